// Verify the XML signatures of one document with the JDK's own XML-signature API (JSR 105,
// javax.xml.crypto.dsig: Apache Santuario inside the JDK), as a peer on Java would.
//
//   java tests/crypto/java/Verify.java DOCUMENT CERT.pem [CERT.pem ...]
//
// The i-th ds:Signature in document order is checked against the i-th certificate's key (the
// signer the gateway's trust list would name), never against the certificate it carries. The
// JDK's secure validation stays on. Prints one JSON line per signature:
// {"signature": Id, "valid": bool, "error": message|null}.

import java.io.FileInputStream;
import java.io.InputStream;
import java.security.PublicKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import javax.xml.crypto.dsig.Reference;
import javax.xml.crypto.dsig.XMLSignature;
import javax.xml.crypto.dsig.XMLSignatureFactory;
import javax.xml.crypto.dsig.dom.DOMValidateContext;
import javax.xml.parsers.DocumentBuilderFactory;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

public class Verify {
    static final String DS = "http://www.w3.org/2000/09/xmldsig#";

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: java Verify.java DOCUMENT CERT.pem [CERT.pem ...]");
            System.exit(2);
        }
        Document document = parse(args[0]);
        markIds(document.getDocumentElement());
        NodeList signatures = document.getElementsByTagNameNS(DS, "Signature");
        if (signatures.getLength() != args.length - 1) {
            System.err.println(signatures.getLength() + " signatures, " + (args.length - 1)
                    + " certificates given");
            System.exit(2);
        }
        XMLSignatureFactory factory = XMLSignatureFactory.getInstance("DOM");
        for (int i = 0; i < signatures.getLength(); i++) {
            Element element = (Element) signatures.item(i);
            String valid = "false";
            String error = null;
            try {
                DOMValidateContext context = new DOMValidateContext(publicKey(args[i + 1]), element);
                XMLSignature signature = factory.unmarshalXMLSignature(context);
                if (signature.validate(context)) {
                    valid = "true";
                } else {
                    error = reasons(signature, context);
                }
            } catch (Exception exc) {
                error = exc.toString();
            }
            System.out.println("{\"signature\": " + quote(element.getAttribute("Id"))
                    + ", \"valid\": " + valid + ", \"error\": "
                    + (error == null ? "null" : quote(error)) + "}");
        }
    }

    static Document parse(String path) throws Exception {
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        try (InputStream in = new FileInputStream(path)) {
            return factory.newDocumentBuilder().parse(in);
        }
    }

    // Our references point at Id attributes (#header, #body, #…-signed-properties,
    // #…-key-info); a DOM without a DTD knows no attribute as an ID until told.
    static void markIds(Element element) {
        if (element.hasAttribute("Id")) {
            element.setIdAttribute("Id", true);
        }
        NodeList children = element.getChildNodes();
        for (int i = 0; i < children.getLength(); i++) {
            if (children.item(i) instanceof Element child) {
                markIds(child);
            }
        }
    }

    static PublicKey publicKey(String pemPath) throws Exception {
        try (InputStream in = new FileInputStream(pemPath)) {
            X509Certificate certificate = (X509Certificate) CertificateFactory.getInstance("X.509")
                    .generateCertificate(in);
            return certificate.getPublicKey();
        }
    }

    static String reasons(XMLSignature signature, DOMValidateContext context) throws Exception {
        List<String> failed = new ArrayList<>();
        if (!signature.getSignatureValue().validate(context)) {
            failed.add("signature value does not verify");
        }
        for (Object item : signature.getSignedInfo().getReferences()) {
            Reference reference = (Reference) item;
            if (!reference.validate(context)) {
                failed.add("digest of reference '" + reference.getURI() + "' does not match");
            }
        }
        return failed.isEmpty() ? "invalid" : String.join("; ", failed);
    }

    static String quote(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }
}
