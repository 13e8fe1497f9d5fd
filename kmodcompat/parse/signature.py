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

from ..records import Signature

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
                     signer, key_id, OPENSSL_DIGEST_NAMES.get(oid, oid) if oid is not None else None, oid, sig, True)


def _pkcs7_fields(der: bytes) -> tuple[str | None, bytes, str | None, bytes]:
    try:
        return _sign_file_fields(der)
    except _OtherShape:
        pass
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


# The PKCS#7 of every signed module seen so far has the one shape sign-file writes (openssl
# cms -sign -noattr -nocerts). Read with a few slices, it costs a fifth of the ~0.1 ms
# asn1crypto takes, which was a third of the whole parse of a small module. Anything else,
# malformed or not, is left to asn1crypto: the shape is accepted only where asn1crypto
# reads the same fields from it (definite lengths, exact tags, no element missing or extra,
# names and digests it decodes the same way), so the result never depends on the reader.

class _OtherShape(Exception):
    pass


def _oid(dotted: str) -> bytes:
    """The DER contents of an object identifier."""
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    out = bytearray()
    for arc in (40 * first + second, *rest):
        septets = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            septets.append(0x80 | arc & 0x7F)
        out += bytes(reversed(septets))
    return bytes(out)


_SIGNED_DATA = _oid("1.2.840.113549.1.7.2")
_DIGESTS = {_oid(dotted): dotted for dotted in OPENSSL_DIGEST_NAMES}
_COMMON_NAME = _oid("2.5.4.3")
#: Issuer attributes read here, all DirectoryStrings for asn1crypto: CN, O, OU.
_NAME_TYPES = frozenset({_COMMON_NAME, _oid("2.5.4.10"), _oid("2.5.4.11")})
#: DirectoryString choices read here, with asn1crypto's codecs: UTF8String, PrintableString.
_STRING_CODECS = {0x0C: "utf-8", 0x13: "latin1"}


def _elements(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(tag, contents start, contents end) of each element filling ``der[start:end]`` exactly."""
    out = []
    pos = start
    while pos < end:
        if pos + 2 > end:
            raise _OtherShape
        tag, length = der[pos], der[pos + 1]
        pos += 2
        if length & 0x80:  # long form; 0x80 alone (indefinite length) is BER
            octets = length & 0x7F
            if not 1 <= octets <= 4 or pos + octets > end:
                raise _OtherShape
            length = int.from_bytes(der[pos:pos + octets], "big")
            pos += octets
        if pos + length > end:
            raise _OtherShape
        out.append((tag, pos, pos + length))
        pos += length
    return out


def _shaped(der: bytes, start: int, end: int, *tags: int) -> list[tuple[int, int]]:
    """Contents (start, end) of the elements of ``der[start:end]``, which must have exactly these tags."""
    elements = _elements(der, start, end)
    if tuple(tag for tag, _, _ in elements) != tags:
        raise _OtherShape
    return [(first, last) for _, first, last in elements]


#: By length, the last PKCS#7 of sign-file's shape read: its bytes before the signature value, and
#: _sign_file_fields' signer, key id and digest OID. The modules of a tree are signed with one key:
#: their PKCS#7 differ in the signature value only (whose length varies with ECDSA), and the fields
#: read from the bytes before it, with the lengths that make the elements fill the whole, are the same.
_SHAPES: dict[int, tuple[bytes, str | None, bytes, str]] = {}
_SHAPES_LIMIT = 64


def _sign_file_fields(der: bytes) -> tuple[str | None, bytes, str | None, bytes]:
    """:func:`_pkcs7_fields` of sign-file's shape; :class:`_OtherShape` for any other."""
    known = _SHAPES.get(len(der))
    if known is not None and der.startswith(known[0]):
        head, signer, key_id, oid = known
        return signer, key_id, oid, der[len(head):]
    signer, key_id, oid, signature = _read_sign_file(der)
    if len(_SHAPES) >= _SHAPES_LIMIT:
        _SHAPES.clear()
    _SHAPES[len(der)] = (der[:signature], signer, key_id, oid)
    return signer, key_id, oid, der[signature:]


def _read_sign_file(der: bytes) -> tuple[str | None, bytes, str, int]:
    """:func:`_sign_file_fields`, with the offset of the signature value, which ends ``der``."""
    ((start, end),) = _shaped(der, 0, len(der), 0x30)  # ContentInfo, nothing after it
    content_type, (start, end) = _shaped(der, start, end, 0x06, 0xA0)
    if der[slice(*content_type)] != _SIGNED_DATA:
        raise _OtherShape
    ((start, end),) = _shaped(der, start, end, 0x30)  # SignedData: no certificates, no CRLs
    *_, (start, end) = _shaped(der, start, end, 0x02, 0x31, 0x30, 0x31)
    ((start, end),) = _shaped(der, start, end, 0x30)  # the one SignerInfo, no attributes
    signer_info = _elements(der, start, end)
    if tuple(tag for tag, _, _ in signer_info) not in ((0x02, 0x30, 0x30, 0x30, 0x04), (0x02, 0x80, 0x30, 0x30, 0x04)):
        raise _OtherShape
    _, (sid_tag, *sid), (_, *digest_algorithm), _, (_, *signature) = signer_info
    algorithm = _elements(der, *digest_algorithm)
    tags = [tag for tag, _, _ in algorithm]
    if tags not in ([0x06], [0x06, 0x05]) or len(tags) == 2 and algorithm[1][1] != algorithm[1][2]:
        raise _OtherShape  # parameters: none, or NULL
    oid = _DIGESTS.get(der[algorithm[0][1]:algorithm[0][2]])
    if oid is None:
        raise _OtherShape
    if sid_tag == 0x80:  # subjectKeyIdentifier
        return None, der[slice(*sid)], oid, signature[0]
    issuer, serial = _shaped(der, *sid, 0x30, 0x02)
    if serial[0] == serial[1]:
        raise _OtherShape
    signer = last = None
    for rdn_tag, *rdn in _elements(der, *issuer):
        if rdn_tag != 0x31:
            raise _OtherShape
        for attribute_tag, *attribute in _elements(der, *rdn):
            type_and_value = _elements(der, *attribute)
            if attribute_tag != 0x30 or len(type_and_value) != 2:
                raise _OtherShape
            (type_tag, *name_type), (string_tag, *value) = type_and_value
            if type_tag != 0x06 or der[slice(*name_type)] not in _NAME_TYPES or string_tag not in _STRING_CODECS:
                raise _OtherShape
            try:
                last = der[slice(*value)].decode(_STRING_CODECS[string_tag])
            except UnicodeDecodeError:
                raise _OtherShape from None
            if signer is None and der[slice(*name_type)] == _COMMON_NAME:
                signer = last
    number = abs(int.from_bytes(der[slice(*serial)], "big", signed=True))
    return (signer if signer is not None else last, number.to_bytes((number.bit_length() + 7) // 8, "big"), oid,
            signature[0])
