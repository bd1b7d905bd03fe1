"""WeCom callback cryptography (doc 90968): message signatures, the AES-256-CBC envelope and URL verification."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
import xml.etree.ElementTree as ElementTree
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "Base64DecodeError",
    "CallbackCrypto",
    "CallbackCryptoError",
    "CallbackEnvelope",
    "DecryptionError",
    "IllegalBufferError",
    "InvalidAesKeyError",
    "InvalidSignatureError",
    "MalformedEnvelopeError",
    "cdata",
    "ReceiveIdMismatchError",
]

# WeCom pads to 32 bytes although AES blocks are 16, so pad bytes run 1..32 (wechatpy's PKCS7Encoder agrees).
PAD_BLOCK_SIZE = 32
RANDOM_PREFIX_SIZE = 16
_LENGTH_FIELD = struct.Struct(">I")
_ENCODING_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")
# WeCom never sends a DTD; refusing one keeps entity-expansion tricks away from the XML parser.
_DOCTYPE_OR_ENTITY = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


class CallbackCryptoError(Exception):
    """A callback that cannot be trusted or read; `code` is the official library's return code."""

    code: int = -40000

    def __init__(self, message: str) -> None:
        super().__init__(f"{message} ({self.code})")


class InvalidSignatureError(CallbackCryptoError):
    code = -40001


class MalformedEnvelopeError(CallbackCryptoError):
    code = -40002


class InvalidAesKeyError(CallbackCryptoError):
    code = -40004


class ReceiveIdMismatchError(CallbackCryptoError):
    code = -40005


class DecryptionError(CallbackCryptoError):
    code = -40007


class IllegalBufferError(CallbackCryptoError):
    code = -40008


class Base64DecodeError(CallbackCryptoError):
    code = -40010


class CallbackEnvelope(NamedTuple):
    """An encrypted callback as WeCom POSTs it: the Encrypt value, its msg_signature and the XML body."""

    encrypt: str
    signature: str
    body: str


def cdata(text: str) -> str:
    """`text` as XML CDATA; "]]>" cannot appear inside one CDATA section, so it is split across two."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


class CallbackCrypto:
    """Signs, encrypts and decrypts WeCom callbacks for one app (token, EncodingAESKey, receive id = CorpID)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not isinstance(encoding_aes_key, str) or not _ENCODING_AES_KEY.fullmatch(encoding_aes_key):
            raise InvalidAesKeyError("EncodingAESKey must be 43 characters of [A-Za-z0-9]")
        self._token = token
        self._key = base64.b64decode(encoding_aes_key + "=")
        self._iv = self._key[:16]
        self._receive_id = receive_id.encode("utf-8")
        self.receive_id = receive_id

    def __repr__(self) -> str:
        # The token and key are secrets; keep them out of logs and test failure output.
        return f"CallbackCrypto(receive_id={self.receive_id!r})"

    def signature(self, timestamp: str | int, nonce: str | int, encrypted: str) -> str:
        """msg_signature = sha1 over the sorted concatenation of token, timestamp, nonce and Encrypt."""
        parts = sorted([self._token, str(timestamp), str(nonce), encrypted])
        return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()

    def check_signature(self, msg_signature: str, timestamp: str | int, nonce: str | int, encrypted: str) -> None:
        """Raise InvalidSignatureError unless msg_signature signs `encrypted`."""
        expected = self.signature(timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode("ascii"), msg_signature.encode("utf-8", "replace")):
            raise InvalidSignatureError("msg_signature does not match")

    def encrypt(self, plaintext: bytes | str, random16: bytes | None = None) -> str:
        """Base64 of AES-256-CBC(random16 ‖ uint32 BE len ‖ msg ‖ receive_id, PKCS#7 to 32 bytes)."""
        message = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        prefix = os.urandom(RANDOM_PREFIX_SIZE) if random16 is None else random16
        if len(prefix) != RANDOM_PREFIX_SIZE:
            raise ValueError(f"random16 must be {RANDOM_PREFIX_SIZE} bytes, got {len(prefix)}")
        body = prefix + _LENGTH_FIELD.pack(len(message)) + message + self._receive_id
        pad = PAD_BLOCK_SIZE - len(body) % PAD_BLOCK_SIZE
        padded = body + bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._iv)).encryptor()
        return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypted_b64: str) -> bytes:
        """The message inside an Encrypt value, after checking padding, length and the trailing receive id."""
        try:
            ciphertext = base64.b64decode(encrypted_b64, validate=True)
        except (binascii.Error, ValueError) as error:
            raise Base64DecodeError(f"Encrypt is not valid base64: {error}") from error
        # b64decode still takes a surplus "=" after a full quantum and non-zero unused bits in the last
        # character; only the one canonical spelling of these bytes is WeCom's.
        if base64.b64encode(ciphertext).decode("ascii") != encrypted_b64:
            raise Base64DecodeError("Encrypt is not canonical base64 (padding or trailing bits)")
        if not ciphertext or len(ciphertext) % 16:
            raise DecryptionError(f"ciphertext length {len(ciphertext)} is not a positive multiple of 16")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()

        pad = padded[-1]
        if not 1 <= pad <= PAD_BLOCK_SIZE or padded[-pad:] != bytes([pad]) * pad:
            raise IllegalBufferError("bad PKCS#7 padding (wrong key or corrupted data)")
        body = padded[:-pad]
        if len(body) < RANDOM_PREFIX_SIZE + _LENGTH_FIELD.size:
            raise IllegalBufferError("plaintext too short for random prefix and length field")
        (message_length,) = _LENGTH_FIELD.unpack_from(body, RANDOM_PREFIX_SIZE)
        message_start = RANDOM_PREFIX_SIZE + _LENGTH_FIELD.size
        message_end = message_start + message_length
        if message_end > len(body):
            raise IllegalBufferError(f"length field {message_length} runs past the plaintext")
        if not hmac.compare_digest(body[message_end:], self._receive_id):
            raise ReceiveIdMismatchError("trailing receive id is not this app's CorpID")
        return body[message_start:message_end]

    def verify_url(self, msg_signature: str, timestamp: str | int, nonce: str | int, echostr: str) -> str:
        """The plaintext to answer WeCom's GET URL check with; `echostr` must already be URL-decoded."""
        self.check_signature(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr).decode("utf-8")

    def decrypt_envelope(self, body: bytes | str, msg_signature: str, timestamp: str | int, nonce: str | int) -> bytes:
        """The plaintext XML inside a POSTed `<xml><Encrypt>…</Encrypt>…</xml>` body, signature checked."""
        encrypted = self._extract_encrypt(body.encode("utf-8") if isinstance(body, str) else body)
        self.check_signature(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    def encrypt_envelope(
        self,
        plain_xml: str,
        *,
        timestamp: str | int,
        nonce: str | int,
        agent_id: int | str,
        random16: bytes | None = None,
    ) -> CallbackEnvelope:
        """Encrypt and sign `plain_xml` into the POST body WeCom delivers to a callback URL."""
        encrypted = self.encrypt(plain_xml, random16)
        return CallbackEnvelope(
            encrypted, self.signature(timestamp, nonce, encrypted), self.envelope_body(encrypted, agent_id)
        )

    def envelope_body(self, encrypted: str, agent_id: int | str) -> str:
        """The POST body WeCom wraps around an Encrypt value."""
        return (
            f"<xml><ToUserName>{cdata(self.receive_id)}</ToUserName>"
            f"<Encrypt>{cdata(encrypted)}</Encrypt>"
            f"<AgentID>{cdata(str(agent_id))}</AgentID></xml>"
        )

    def encrypt_reply(
        self, plain_xml: str, *, timestamp: str | int, nonce: str | int, random16: bytes | None = None
    ) -> str:
        """A passive reply body (doc 90241): `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`."""
        encrypted = self.encrypt(plain_xml, random16)
        return (
            f"<xml><Encrypt>{cdata(encrypted)}</Encrypt>"
            f"<MsgSignature>{cdata(self.signature(timestamp, nonce, encrypted))}</MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp>"
            f"<Nonce>{cdata(str(nonce))}</Nonce></xml>"
        )

    @staticmethod
    def _extract_encrypt(body: bytes) -> str:
        if _DOCTYPE_OR_ENTITY.search(body):
            raise MalformedEnvelopeError("callback body carries a DTD")
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError as error:
            raise MalformedEnvelopeError(f"callback body is not XML: {error}") from error
        if root.tag != "xml":
            raise MalformedEnvelopeError(f"callback root element is <{root.tag}>, not <xml>")
        encrypted = (root.findtext("Encrypt") or "").strip()
        if not encrypted:
            raise MalformedEnvelopeError("callback body has no Encrypt element")
        return encrypted
