"""The appended module signature and the fields ``modinfo`` prints from it.

Layout (scripts/sign-file.c, kernel/module_signature.c)::

    [ELF image][signature: sig_len bytes][struct module_signature: 12]["~Module signature appended~\n"]

``kmod_accepts`` mirrors kmod_module_signature_info() (libkmod-signature.c):
modinfo shows signature fields only for a trailer passing those checks. The
PKCS#7 fields follow its fill_pkcs7(): signer = the issuer's commonName,
sig_key = the serial number's big-endian magnitude (BN_bn2bin), the hash name
from the digest algorithm, signature = the signer info's encrypted digest.
"""

from __future__ import annotations

import struct

from .records import Signature

MARKER = b"~Module signature appended~\n"
_STRUCT = struct.Struct(">BBBBB3xI")
_TRAILER = _STRUCT.size + len(MARKER)

ID_TYPES = ("PGP", "X509", "PKCS#7")
PKEY_ID_PKCS7 = 2
#: kmod's pkey_hash_algo[] (libkmod-signature.c), indexed by struct module_signature.hash.
HASH_ALGOS = ("md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224", "sm3")
#: kmod's pkey_algo[]: DSA, RSA.
PKEY_ALGO_COUNT = 2

#: Digest OIDs to OpenSSL's long names, which kmod 32+ prints (OBJ_obj2txt/OBJ_nid2ln).
OPENSSL_DIGEST_NAMES = {
    "1.2.840.113549.2.4": "md4",
    "1.2.840.113549.2.5": "md5",
    "1.3.14.3.2.26": "sha1",
    "1.3.36.3.2.1": "ripemd160",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.5": "sha512-224",
    "2.16.840.1.101.3.4.2.6": "sha512-256",
    "2.16.840.1.101.3.4.2.7": "sha3-224",
    "2.16.840.1.101.3.4.2.8": "sha3-256",
    "2.16.840.1.101.3.4.2.9": "sha3-384",
    "2.16.840.1.101.3.4.2.10": "sha3-512",
    "2.16.840.1.101.3.4.2.11": "shake128",
    "2.16.840.1.101.3.4.2.12": "shake256",
    "1.2.156.10197.1.401": "sm3",
    "1.2.840.113549.1.1.1": "rsaEncryption",
}


def parse(data: bytes) -> Signature | None:
    """The signature trailer of a module image, or None when there is no marker."""
    size = len(data)
    if size < _TRAILER or not data.endswith(MARKER):
        return None
    end = size - _TRAILER
    algo, hash_, id_type, signer_len, key_id_len, sig_len = _STRUCT.unpack_from(data, end)
    accepts = (algo < PKEY_ALGO_COUNT and hash_ < len(HASH_ALGOS) and id_type < len(ID_TYPES)
               and sig_len != 0 and end >= signer_len + key_id_len + sig_len)
    id_name = ID_TYPES[id_type] if id_type < len(ID_TYPES) else f"unknown({id_type})"
    if not accepts:
        return Signature(max(0, end - sig_len), algo, hash_, id_type, signer_len, key_id_len, sig_len, id_name,
                         None, b"", None, None, b"", False)
    sig_start = end - sig_len
    if id_type != PKEY_ID_PKCS7:
        key_start = sig_start - key_id_len
        signer_start = key_start - signer_len
        return Signature(signer_start, algo, hash_, id_type, signer_len, key_id_len, sig_len, id_name,
                         data[signer_start:key_start].decode("utf-8", "surrogateescape"),
                         data[key_start:sig_start], HASH_ALGOS[hash_], None, data[sig_start:end], True)
    try:
        signer, key_id, oid, sig = _pkcs7_fields(data[sig_start:end])
    except Exception as e:  # asn1crypto raises ValueError/TypeError/KeyError on bad DER
        return Signature(sig_start, algo, hash_, id_type, signer_len, key_id_len, sig_len, id_name,
                         None, b"", None, None, b"", False, f"PKCS#7 does not parse: {e}".splitlines()[0])
    return Signature(sig_start, algo, hash_, id_type, signer_len, key_id_len, sig_len, id_name,
                     signer, key_id, OPENSSL_DIGEST_NAMES.get(oid, oid), oid, sig, True)


def _pkcs7_fields(der: bytes) -> tuple[str | None, bytes, str | None, bytes]:
    from asn1crypto import cms

    info = cms.ContentInfo.load(der, strict=False)
    signed = info["content"]
    signer_info = signed["signer_infos"][0]
    sid = signer_info["sid"]
    signer = None
    key_id = b""
    if sid.name == "issuer_and_serial_number":
        ias = sid.chosen
        last = None
        for rdn in ias["issuer"].chosen:
            for attr in rdn:
                last = attr["value"].native
                if signer is None and attr["type"].dotted == "2.5.4.3":  # the first commonName
                    signer = attr["value"].native
        if signer is None:
            signer = last  # fill_pkcs7(): no CN leaves the last entry's value
        serial = abs(ias["serial_number"].native)
        key_id = serial.to_bytes((serial.bit_length() + 7) // 8, "big")
    else:
        key_id = sid.chosen.native
    oid = signer_info["digest_algorithm"]["algorithm"].dotted
    return signer, key_id, oid, signer_info["signature"].native


def unsigned_length(data: bytes) -> int:
    """Length of the ELF image in front of any signature trailer."""
    sig = parse(data)
    return sig.offset if sig is not None and sig.kmod_accepts else len(data)
