// The gateway's XAdES profile in the JDK's own XML-signature API (JSR 105, javax.xml.crypto.dsig:
// Apache Santuario inside the JDK), as a peer's Java system would sign and verify it. One file,
// run as a single-file program (no build):
//
//   java tests/crypto/java/XmlSignatures.java verify DOCUMENT CERT.pem [CERT.pem ...]
//   java tests/crypto/java/XmlSignatures.java sign official|seal DOCUMENT KEY.pem OUTPUT SIGNING_TIME CERT.pem [ISSUER.pem ...]
//
// verify: the i-th ds:Signature in document order is checked against the i-th certificate's key
// (the signer the gateway's trust list would name), never against the certificate it carries,
// with the JDK's secure validation on; one JSON line per signature:
// {"signature": Id, "valid": bool, "error": message|null}.
//
// sign: no template from the gateway; every element is built here from
// docs/keys-and-signatures.md, "The signature profile". KEY.pem is an unencrypted PKCS#8 EC key;
// SIGNING_TIME is UTC (2026-11-23T10:00:00Z). Sign the official first, then the seal: the seal's
// whole-envelope digest covers the official.

import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.List;
import javax.xml.crypto.dom.DOMStructure;
import javax.xml.crypto.dsig.CanonicalizationMethod;
import javax.xml.crypto.dsig.DigestMethod;
import javax.xml.crypto.dsig.Reference;
import javax.xml.crypto.dsig.SignedInfo;
import javax.xml.crypto.dsig.Transform;
import javax.xml.crypto.dsig.XMLObject;
import javax.xml.crypto.dsig.XMLSignature;
import javax.xml.crypto.dsig.XMLSignatureFactory;
import javax.xml.crypto.dsig.dom.DOMSignContext;
import javax.xml.crypto.dsig.dom.DOMValidateContext;
import javax.xml.crypto.dsig.keyinfo.KeyInfo;
import javax.xml.crypto.dsig.keyinfo.KeyInfoFactory;
import javax.xml.crypto.dsig.spec.C14NMethodParameterSpec;
import javax.xml.crypto.dsig.spec.TransformParameterSpec;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

public class XmlSignatures {
    static final String USAGE = "usage: java XmlSignatures.java verify DOCUMENT CERT.pem [CERT.pem ...]\n"
            + "       java XmlSignatures.java sign official|seal DOCUMENT KEY.pem OUTPUT SIGNING_TIME "
            + "CERT.pem [ISSUER.pem ...]";

    public static void main(String[] args) throws Exception {
        String[] rest = java.util.Arrays.copyOfRange(args, Math.min(1, args.length), args.length);
        if (args.length > 0 && args[0].equals("verify")) {
            Verify.run(rest);
        } else if (args.length > 0 && args[0].equals("sign")) {
            Sign.run(rest);
        } else {
            System.err.println(USAGE);
            System.exit(2);
        }
    }
}

class Verify {
    static final String DS = "http://www.w3.org/2000/09/xmldsig#";

    static void run(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println(XmlSignatures.USAGE);
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

class Sign {
    static final String DS = "http://www.w3.org/2000/09/xmldsig#";
    static final String ENV = "urn:cis-exchange:envelope:1";
    static final String XADES = "http://uri.etsi.org/01903/v1.3.2#";
    static final String ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
    static final String SIGNED_PROPERTIES = "http://uri.etsi.org/01903#SignedProperties";

    static void run(String[] args) throws Exception {
        if (args.length < 6 || !(args[0].equals("official") || args[0].equals("seal"))) {
            System.err.println(XmlSignatures.USAGE);
            System.exit(2);
        }
        String role = args[0];
        Document document = Verify.parse(args[1]);
        Verify.markIds(document.getDocumentElement());
        PrivateKey key = privateKey(args[2]);
        List<X509Certificate> chain = new ArrayList<>();
        for (int i = 5; i < args.length; i++) {
            chain.add(certificate(args[i]));
        }
        String id = role + "-signature";
        XMLSignatureFactory factory = XMLSignatureFactory.getInstance("DOM");
        Element holder = holder(document, role.equals("official") ? "Official" : "Seal");

        Element properties = qualifyingProperties(document, id, role, args[4], chain.get(0),
                role.equals("official") ? 2 : 1);
        Element signedProperties = (Element) properties.getFirstChild();

        List<Reference> references = new ArrayList<>();
        Transform exclusive = factory.newTransform(CanonicalizationMethod.EXCLUSIVE,
                (TransformParameterSpec) null);
        DigestMethod sha256 = factory.newDigestMethod(DigestMethod.SHA256, null);
        if (role.equals("official")) {
            references.add(factory.newReference("#header", sha256, List.of(exclusive), null,
                    id + "-reference-0"));
            references.add(factory.newReference("#body", sha256, List.of(exclusive), null,
                    id + "-reference-1"));
        } else {
            Transform enveloped = factory.newTransform(Transform.ENVELOPED,
                    (TransformParameterSpec) null);
            references.add(factory.newReference("", sha256, List.of(enveloped, exclusive), null,
                    id + "-reference-0"));
        }
        references.add(factory.newReference("#" + id + "-signed-properties", sha256,
                List.of(exclusive), SIGNED_PROPERTIES, null));
        references.add(factory.newReference("#" + id + "-key-info", sha256, List.of(exclusive),
                null, null));

        SignedInfo signedInfo = factory.newSignedInfo(
                factory.newCanonicalizationMethod(CanonicalizationMethod.EXCLUSIVE,
                        (C14NMethodParameterSpec) null),
                factory.newSignatureMethod(ECDSA_SHA256, null), references);
        KeyInfoFactory keyInfos = factory.getKeyInfoFactory();
        KeyInfo keyInfo = keyInfos.newKeyInfo(
                List.of(keyInfos.newX509Data(new ArrayList<Object>(chain))), id + "-key-info");
        XMLObject object = factory.newXMLObject(
                Collections.singletonList(new DOMStructure(properties)), null, null, null);
        XMLSignature signature = factory.newXMLSignature(signedInfo, keyInfo, List.of(object), id,
                null);

        DOMSignContext context = new DOMSignContext(key, holder);
        context.setDefaultNamespacePrefix("ds");
        // The SignedProperties reference resolves by Id once the Object is in the document.
        context.setIdAttributeNS(signedProperties, null, "Id");
        signature.sign(context);

        try (OutputStream out = new FileOutputStream(args[3])) {
            TransformerFactory.newInstance().newTransformer()
                    .transform(new DOMSource(document), new StreamResult(out));
        }
    }

    // env:Signatures/env:<Role>, made at the end of the envelope when absent.
    static Element holder(Document document, String role) {
        Element envelope = document.getDocumentElement();
        NodeList found = envelope.getElementsByTagNameNS(ENV, "Signatures");
        Element signatures;
        if (found.getLength() > 0) {
            signatures = (Element) found.item(0);
        } else {
            signatures = document.createElementNS(ENV, "env:Signatures");
            envelope.appendChild(signatures);
        }
        Element holder = document.createElementNS(ENV, "env:" + role);
        signatures.appendChild(holder);
        return holder;
    }

    static Element qualifyingProperties(Document document, String id, String role,
            String signingTime, X509Certificate signer, int dataReferences) throws Exception {
        Element qualifying = xades(document, "QualifyingProperties");
        qualifying.setAttribute("Target", "#" + id);
        Element signed = child(qualifying, "SignedProperties");
        signed.setAttribute("Id", id + "-signed-properties");
        Element signatureProperties = child(signed, "SignedSignatureProperties");
        child(signatureProperties, "SigningTime").setTextContent(signingTime);
        Element digest = child(child(child(signatureProperties, "SigningCertificateV2"), "Cert"),
                "CertDigest");
        Element method = document.createElementNS(DS, "ds:DigestMethod");
        method.setAttribute("Algorithm", DigestMethod.SHA256);
        digest.appendChild(method);
        Element value = document.createElementNS(DS, "ds:DigestValue");
        value.setTextContent(Base64.getEncoder().encodeToString(
                MessageDigest.getInstance("SHA-256").digest(signer.getEncoded())));
        digest.appendChild(value);
        child(child(child(signatureProperties, "SignerRole"), "ClaimedRoles"), "ClaimedRole")
                .setTextContent(role);
        Element dataProperties = child(signed, "SignedDataObjectProperties");
        for (int i = 0; i < dataReferences; i++) {
            Element format = child(dataProperties, "DataObjectFormat");
            format.setAttribute("ObjectReference", "#" + id + "-reference-" + i);
            child(format, "Description").setTextContent("Envelope (" + ENV + ")");
            child(format, "MimeType").setTextContent("text/xml");
        }
        return qualifying;
    }

    static Element xades(Document document, String name) {
        return document.createElementNS(XADES, "xades:" + name);
    }

    static Element child(Element parent, String name) {
        Element element = xades(parent.getOwnerDocument(), name);
        parent.appendChild(element);
        return element;
    }

    static PrivateKey privateKey(String pemPath) throws Exception {
        String pem = Files.readString(Path.of(pemPath));
        String body = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        return KeyFactory.getInstance("EC")
                .generatePrivate(new PKCS8EncodedKeySpec(Base64.getDecoder().decode(body)));
    }

    static X509Certificate certificate(String pemPath) throws Exception {
        try (InputStream in = new FileInputStream(pemPath)) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }
}
