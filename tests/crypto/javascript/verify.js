// Verify the XML signatures of one document with a JavaScript stack, as a peer on Node would.
//
//   node verify.js xml-crypto|xadesjs|xadesjs-seal-moved DOCUMENT CERT.pem [CERT.pem ...]
//
// The i-th ds:Signature in document order is checked against the i-th certificate (the signer
// the gateway's trust list would name), never against the certificate it carries itself.
// Prints one JSON line per signature: {"signature": Id, "valid": bool, "error": message|null}.
"use strict";

const fs = require("fs");
const crypto = require("crypto");
const { DOMParser } = require("@xmldom/xmldom");

const DS = "http://www.w3.org/2000/09/xmldsig#";
const ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";

// xml-crypto 6 has no ECDSA of its own; SignatureAlgorithms is its documented way to add one.
// XML-DSig's ECDSA value is r || s (RFC 4050), which Node calls "ieee-p1363".
class EcdsaSha256 {
  getAlgorithmName() {
    return ECDSA_SHA256;
  }
  verifySignature(material, key, signatureValue) {
    return crypto.verify(
      "sha256",
      Buffer.from(material),
      { key, dsaEncoding: "ieee-p1363" },
      Buffer.from(signatureValue, "base64"),
    );
  }
  getSignature() {
    throw new Error("this script only verifies");
  }
}

async function withXmlCrypto(xml, signature, certificatePem) {
  const { SignedXml } = require("xml-crypto");
  const verifier = new SignedXml({ publicCert: certificatePem });
  verifier.SignatureAlgorithms[ECDSA_SHA256] = EcdsaSha256;
  verifier.loadSignature(signature);
  if (verifier.checkSignature(xml)) {
    return true;
  }
  // A reference that failed says why only on itself (xml-crypto returns false, not an error).
  const reasons = verifier.references.filter((ref) => ref.validationError);
  throw new Error(reasons.map((ref) => ref.validationError.message).join("; ") || "invalid");
}

async function withXadesjs(xml, signature, certificatePem, document) {
  // xmldsigjs re-imports a key it is handed without its curve, so it verifies with the
  // certificate in KeyInfo; that certificate must then be the expected one, byte for byte.
  const xadesjs = require("xadesjs");
  xadesjs.Application.setEngine("NodeJS", globalThis.crypto);
  const carried = signature.getElementsByTagNameNS(DS, "X509Certificate")[0];
  const expected = new crypto.X509Certificate(certificatePem).raw;
  if (!carried || !Buffer.from(carried.textContent.replace(/\s+/g, ""), "base64").equals(expected)) {
    throw new Error("the signature carries another certificate than the expected signer's");
  }
  const verifier = new xadesjs.SignedXml(document);
  verifier.LoadXml(signature);
  return verifier.Verify();
}

// The way round xmldsigjs#49 for a body on xadesjs: its enveloped-signature transform removes a
// signature only where it is a direct child of the referenced element, so move the seal's
// ds:Signature there (the end of env:Envelope) before verifying. What it digests is then what
// the profile signs: the envelope without the seal's signature, env:Seal left empty either way.
async function withXadesjsSealMoved(xml, signature, certificatePem, document) {
  const root = document.documentElement;
  if (signature.getAttribute("Id") === "seal-signature" && signature.parentNode !== root) {
    root.appendChild(signature);
  }
  return withXadesjs(xml, signature, certificatePem, document);
}

const STACKS = {
  "xml-crypto": withXmlCrypto,
  xadesjs: withXadesjs,
  "xadesjs-seal-moved": withXadesjsSealMoved,
};

async function main() {
  const [stack, file, ...certificates] = process.argv.slice(2);
  const verify = STACKS[stack];
  if (!verify || !file) {
    console.error(
      "usage: node verify.js xml-crypto|xadesjs|xadesjs-seal-moved DOCUMENT CERT.pem [CERT.pem ...]",
    );
    process.exit(2);
  }
  const xml = fs.readFileSync(file, "utf8");
  const document = new DOMParser().parseFromString(xml, "application/xml");
  const signatures = Array.from(document.getElementsByTagNameNS(DS, "Signature"));
  if (signatures.length !== certificates.length) {
    console.error(`${signatures.length} signatures, ${certificates.length} certificates given`);
    process.exit(2);
  }
  for (const [index, signature] of signatures.entries()) {
    const certificatePem = fs.readFileSync(certificates[index], "utf8");
    let valid = false;
    let error = null;
    try {
      valid = (await verify(xml, signature, certificatePem, document)) === true;
    } catch (exc) {
      error = exc.message;
    }
    console.log(JSON.stringify({ signature: signature.getAttribute("Id"), valid, error }));
  }
}

main();
