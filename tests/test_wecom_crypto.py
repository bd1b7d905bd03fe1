"""Tests for bot.wecom.crypto: Tencent's known-answer vectors, round trips, wechatpy cross-checks, every rejection."""

from __future__ import annotations

import base64
import struct
import xml.etree.ElementTree as ElementTree

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from bot.wecom.crypto import (
    Base64DecodeError,
    CallbackCrypto,
    CallbackCryptoError,
    DecryptionError,
    IllegalBufferError,
    InvalidAesKeyError,
    InvalidSignatureError,
    MalformedEnvelopeError,
    ReceiveIdMismatchError,
    cdata,
)

# Known-answer vectors from Tencent's official sample (sbzhu/weworkapi_python, callback/Sample.py).
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
ENCODING_AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP_ID = "ww1436e0e65a779aee"

VERIFY_SIGNATURE = "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb"
VERIFY_TIMESTAMP = "1476416373"
VERIFY_NONCE = "47744683"
VERIFY_ECHOSTR = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
VERIFY_PLAINTEXT = "1288432023552776189"

DECRYPT_SIGNATURE = "0c3914025cb4b4d68103f6bfc8db550f79dcf48e"
DECRYPT_TIMESTAMP = "1476422779"
DECRYPT_NONCE = "1597212914"
DECRYPT_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew"
    "+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24Yhm"
    "ZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwoc"
    "ugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)
DECRYPT_BODY = (
    "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n"
    f"<Encrypt><![CDATA[{DECRYPT_ENCRYPT}]]></Encrypt>\n"
    "<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
)
DECRYPT_PLAINTEXT = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
    "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
)

KEY = base64.b64decode(ENCODING_AES_KEY + "=")


@pytest.fixture
def crypto() -> CallbackCrypto:
    return CallbackCrypto(TOKEN, ENCODING_AES_KEY, CORP_ID)


@pytest.fixture
def wechatpy_crypto() -> WeChatCrypto:
    return WeChatCrypto(TOKEN, ENCODING_AES_KEY, CORP_ID)


def raw_aes_encrypt(plaintext: bytes) -> str:
    """AES-256-CBC with WeCom's key and IV but no framing or padding, for hand-built bad buffers."""
    encryptor = Cipher(algorithms.AES(KEY), modes.CBC(KEY[:16])).encryptor()
    return base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode()


def raw_aes_decrypt(encrypted: str) -> bytes:
    decryptor = Cipher(algorithms.AES(KEY), modes.CBC(KEY[:16])).decryptor()
    ciphertext = base64.b64decode(encrypted)
    return decryptor.update(ciphertext) + decryptor.finalize()


# ---------------------------------------------------------------- known answers


def test_verify_url_known_answer(crypto: CallbackCrypto) -> None:
    assert crypto.verify_url(VERIFY_SIGNATURE, VERIFY_TIMESTAMP, VERIFY_NONCE, VERIFY_ECHOSTR) == VERIFY_PLAINTEXT


def test_decrypt_envelope_known_answer(crypto: CallbackCrypto) -> None:
    plaintext = crypto.decrypt_envelope(DECRYPT_BODY.encode(), DECRYPT_SIGNATURE, DECRYPT_TIMESTAMP, DECRYPT_NONCE)
    assert plaintext.decode("utf-8") == DECRYPT_PLAINTEXT


def test_signature_known_answers(crypto: CallbackCrypto) -> None:
    assert crypto.signature(VERIFY_TIMESTAMP, VERIFY_NONCE, VERIFY_ECHOSTR) == VERIFY_SIGNATURE
    assert crypto.signature(int(DECRYPT_TIMESTAMP), int(DECRYPT_NONCE), DECRYPT_ENCRYPT) == DECRYPT_SIGNATURE


@pytest.mark.parametrize(
    ("encrypted", "plaintext"),
    [(VERIFY_ECHOSTR, VERIFY_PLAINTEXT), (DECRYPT_ENCRYPT, DECRYPT_PLAINTEXT)],
    ids=["echostr", "message"],
)
def test_encrypt_reproduces_official_ciphertext_given_its_random_prefix(
    crypto: CallbackCrypto, encrypted: str, plaintext: str
) -> None:
    # Same random prefix ⇒ byte-identical ciphertext: proves framing, 32-byte padding and IV all match Tencent's.
    random16 = raw_aes_decrypt(encrypted)[:16]
    assert crypto.encrypt(plaintext, random16=random16) == encrypted


# ---------------------------------------------------------------- round trips and layout


@pytest.mark.parametrize("size", [0, 1, 11, 12, 13, 43, 44, 45, 100, 2048, 70_000])
def test_round_trip_pads_to_32_byte_blocks(crypto: CallbackCrypto, size: int) -> None:
    message = ("测" * size).encode("utf-8")[:size]
    encrypted = crypto.encrypt(message)
    ciphertext = base64.b64decode(encrypted)
    assert len(ciphertext) % 32 == 0
    framed = 16 + 4 + size + len(CORP_ID)
    assert len(ciphertext) == framed + (32 - framed % 32)
    assert crypto.decrypt(encrypted) == message


def test_plaintext_layout_is_random_length_message_receive_id(crypto: CallbackCrypto) -> None:
    random16 = bytes(range(16))
    plain = raw_aes_decrypt(crypto.encrypt("hello", random16=random16))
    pad = plain[-1]
    assert plain[-pad:] == bytes([pad]) * pad
    assert plain[:-pad] == random16 + struct.pack(">I", 5) + b"hello" + CORP_ID.encode()


def test_encrypt_uses_fresh_randomness(crypto: CallbackCrypto) -> None:
    assert crypto.encrypt("same") != crypto.encrypt("same")


def test_encrypt_rejects_wrong_random_prefix_length(crypto: CallbackCrypto) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        crypto.encrypt("x", random16=b"short")


def test_encrypt_envelope_builds_wecom_post_body(crypto: CallbackCrypto) -> None:
    envelope = crypto.encrypt_envelope(DECRYPT_PLAINTEXT, timestamp="1700000000", nonce="123", agent_id=1000002)
    encrypt, signature, body = envelope
    root = ElementTree.fromstring(body)
    assert [child.tag for child in root] == ["ToUserName", "Encrypt", "AgentID"]
    assert root.findtext("ToUserName") == CORP_ID
    assert root.findtext("Encrypt") == encrypt
    assert root.findtext("AgentID") == "1000002"
    assert signature == crypto.signature("1700000000", "123", encrypt)
    assert crypto.decrypt_envelope(body, signature, "1700000000", "123").decode() == DECRYPT_PLAINTEXT


def test_cdata_survives_its_own_terminator() -> None:
    text = "a]]>b<c>&"
    assert ElementTree.fromstring(f"<x>{cdata(text)}</x>").text == text


def test_repr_hides_secrets(crypto: CallbackCrypto) -> None:
    assert TOKEN not in repr(crypto)
    assert ENCODING_AES_KEY not in repr(crypto)


# ---------------------------------------------------------------- cross-checks with wechatpy


def test_our_envelope_decrypts_with_wechatpy(crypto: CallbackCrypto, wechatpy_crypto: WeChatCrypto) -> None:
    plain = "<xml><Content><![CDATA[季度考核 ✓]]></Content></xml>"
    encrypt, signature, body = crypto.encrypt_envelope(plain, timestamp="1700000001", nonce="42", agent_id=1000002)
    assert wechatpy_crypto.decrypt_message(body, signature, "1700000001", "42") == plain


def test_our_echostr_verifies_with_wechatpy(crypto: CallbackCrypto, wechatpy_crypto: WeChatCrypto) -> None:
    echostr = crypto.encrypt("5927403133229817")
    signature = crypto.signature("1700000002", "77", echostr)
    assert wechatpy_crypto.check_signature(signature, "1700000002", "77", echostr) == "5927403133229817"


def test_wechatpy_reply_decrypts_with_ours(crypto: CallbackCrypto, wechatpy_crypto: WeChatCrypto) -> None:
    plain = "<xml><Content><![CDATA[绩效 📈]]></Content></xml>"
    reply = wechatpy_crypto.encrypt_message(plain, "9876", "1700000003")
    signature = ElementTree.fromstring(reply).findtext("MsgSignature")
    assert signature is not None
    assert crypto.decrypt_envelope(reply, signature, "1700000003", "9876").decode() == plain


def test_our_passive_reply_decrypts_with_wechatpy(crypto: CallbackCrypto, wechatpy_crypto: WeChatCrypto) -> None:
    plain = "<xml><MsgType><![CDATA[update_button]]></MsgType></xml>"
    reply = crypto.encrypt_reply(plain, timestamp="1700000004", nonce="555")
    root = ElementTree.fromstring(reply)
    assert [child.tag for child in root] == ["Encrypt", "MsgSignature", "TimeStamp", "Nonce"]
    signature = root.findtext("MsgSignature")
    assert wechatpy_crypto.decrypt_message(reply, signature, "1700000004", "555") == plain


@settings(max_examples=60, deadline=None)
@given(
    message=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300),
    timestamp=st.integers(0, 2**31),
    nonce=st.integers(0, 10**10),
)
def test_property_both_directions_agree_with_wechatpy(message: str, timestamp: int, nonce: int) -> None:
    ours = CallbackCrypto(TOKEN, ENCODING_AES_KEY, CORP_ID)
    theirs = WeChatCrypto(TOKEN, ENCODING_AES_KEY, CORP_ID)
    encrypted = ours.encrypt(message)
    signature = ours.signature(timestamp, nonce, encrypted)
    assert theirs.check_signature(signature, str(timestamp), str(nonce), encrypted) == message
    reply = theirs.encrypt_message(message, str(nonce), str(timestamp))
    their_signature = ElementTree.fromstring(reply).findtext("MsgSignature") or ""
    assert ours.decrypt_envelope(reply, their_signature, timestamp, nonce).decode("utf-8") == message


# ---------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    "bad_key",
    [ENCODING_AES_KEY[:-1], ENCODING_AES_KEY + "A", ENCODING_AES_KEY[:-1] + "+", ENCODING_AES_KEY[:-1] + "=", ""],
    ids=["42 chars", "44 chars", "plus sign", "padding char", "empty"],
)
def test_bad_encoding_aes_key_rejected_at_construction(bad_key: str) -> None:
    with pytest.raises(InvalidAesKeyError) as raised:
        CallbackCrypto(TOKEN, bad_key, CORP_ID)
    assert raised.value.code == -40004


def test_bad_signature_rejected(crypto: CallbackCrypto) -> None:
    with pytest.raises(InvalidSignatureError) as raised:
        crypto.decrypt_envelope(DECRYPT_BODY, "0" * 40, DECRYPT_TIMESTAMP, DECRYPT_NONCE)
    assert raised.value.code == -40001


def test_signature_over_other_timestamp_rejected(crypto: CallbackCrypto) -> None:
    with pytest.raises(InvalidSignatureError):
        crypto.verify_url(VERIFY_SIGNATURE, "1476416374", VERIFY_NONCE, VERIFY_ECHOSTR)


def test_wrong_token_rejected() -> None:
    other = CallbackCrypto("another-token", ENCODING_AES_KEY, CORP_ID)
    with pytest.raises(InvalidSignatureError):
        other.verify_url(VERIFY_SIGNATURE, VERIFY_TIMESTAMP, VERIFY_NONCE, VERIFY_ECHOSTR)


def test_wrong_corp_id_rejected(crypto: CallbackCrypto) -> None:
    stranger = CallbackCrypto(TOKEN, ENCODING_AES_KEY, "wwsomeoneelse00000")
    encrypted = stranger.encrypt("<xml/>")
    with pytest.raises(ReceiveIdMismatchError) as raised:
        crypto.decrypt(encrypted)
    assert raised.value.code == -40005


def test_wrong_corp_id_rejected_by_wechatpy_too(wechatpy_crypto: WeChatCrypto) -> None:
    stranger = CallbackCrypto(TOKEN, ENCODING_AES_KEY, "wwsomeoneelse00000")
    _, signature, body = stranger.encrypt_envelope("<xml/>", timestamp="1", nonce="2", agent_id=1)
    with pytest.raises(InvalidCorpIdException):
        wechatpy_crypto.decrypt_message(body, signature, "1", "2")


def test_wechatpy_rejects_our_bad_signature(crypto: CallbackCrypto, wechatpy_crypto: WeChatCrypto) -> None:
    _, signature, body = crypto.encrypt_envelope("<xml/>", timestamp="1", nonce="2", agent_id=1)
    with pytest.raises(InvalidSignatureException):
        wechatpy_crypto.decrypt_message(body, signature, "1", "3")


def test_corp_id_prefix_is_not_enough(crypto: CallbackCrypto) -> None:
    longer = CallbackCrypto(TOKEN, ENCODING_AES_KEY, CORP_ID + "x")
    with pytest.raises(ReceiveIdMismatchError):
        crypto.decrypt(longer.encrypt("<xml/>"))


def test_truncated_base64_rejected(crypto: CallbackCrypto) -> None:
    with pytest.raises(Base64DecodeError) as raised:
        crypto.decrypt(DECRYPT_ENCRYPT[:-1])
    assert raised.value.code == -40010


def test_echostr_with_space_for_plus_rejected(crypto: CallbackCrypto) -> None:
    # What a '+' becomes when a query string is decoded as a form: the classic echostr bug. The signature
    # covers the echostr as WeCom sent it, so the check fails first; the mangled base64 is refused as well.
    mangled = VERIFY_ECHOSTR.replace("+", " ")
    with pytest.raises(InvalidSignatureError):
        crypto.verify_url(VERIFY_SIGNATURE, VERIFY_TIMESTAMP, VERIFY_NONCE, mangled)
    with pytest.raises(Base64DecodeError):
        crypto.decrypt(mangled)


def test_ciphertext_cut_off_mid_block_rejected(crypto: CallbackCrypto) -> None:
    cut = base64.b64encode(base64.b64decode(DECRYPT_ENCRYPT)[:-8]).decode()
    with pytest.raises(DecryptionError) as raised:
        crypto.decrypt(cut)
    assert raised.value.code == -40007


def test_empty_ciphertext_rejected(crypto: CallbackCrypto) -> None:
    with pytest.raises(DecryptionError):
        crypto.decrypt("")


@pytest.mark.parametrize("pad_byte", [0, 33, 200], ids=["zero", "33", "200"])
def test_padding_value_out_of_range_rejected(crypto: CallbackCrypto, pad_byte: int) -> None:
    framed = b"R" * 16 + struct.pack(">I", 2) + b"hi" + CORP_ID.encode()
    buffer = framed + b"\x00" * (63 - len(framed)) + bytes([pad_byte])
    with pytest.raises(IllegalBufferError) as raised:
        crypto.decrypt(raw_aes_encrypt(buffer))
    assert raised.value.code == -40008


def test_inconsistent_padding_bytes_rejected(crypto: CallbackCrypto) -> None:
    framed = b"R" * 16 + struct.pack(">I", 2) + b"hi" + CORP_ID.encode()
    pad = 64 - len(framed)
    buffer = framed + bytes([7]) + bytes([pad]) * (pad - 1)
    with pytest.raises(IllegalBufferError):
        crypto.decrypt(raw_aes_encrypt(buffer))


def test_length_field_past_end_rejected(crypto: CallbackCrypto) -> None:
    framed = b"R" * 16 + struct.pack(">I", 1000) + b"hi" + CORP_ID.encode()
    pad = 64 - len(framed)
    with pytest.raises(IllegalBufferError):
        crypto.decrypt(raw_aes_encrypt(framed + bytes([pad]) * pad))


def test_buffer_too_short_for_header_rejected(crypto: CallbackCrypto) -> None:
    with pytest.raises(IllegalBufferError):
        crypto.decrypt(raw_aes_encrypt(b"R" * 12 + bytes([20]) * 20))


def test_wrong_key_never_returns_plaintext(crypto: CallbackCrypto) -> None:
    other = CallbackCrypto(TOKEN, "A" * 43, CORP_ID)
    for _ in range(20):
        with pytest.raises(CallbackCryptoError):
            crypto.decrypt(other.encrypt("<xml>secret</xml>"))


@pytest.mark.parametrize(
    "body",
    [
        b"not xml at all",
        b"",
        b"<xml><ToUserName>x</ToUserName></xml>",
        b"<xml><Encrypt></Encrypt></xml>",
        b"<root><Encrypt>abc</Encrypt></root>",
        b"<xml><Encrypt>abc</Encrypt>",
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e "x">]><xml><Encrypt>&e;</Encrypt></xml>',
    ],
    ids=["garbage", "empty", "no Encrypt", "empty Encrypt", "wrong root", "unclosed", "DTD"],
)
def test_non_envelope_body_rejected(crypto: CallbackCrypto, body: bytes) -> None:
    with pytest.raises(MalformedEnvelopeError) as raised:
        crypto.decrypt_envelope(body, "sig", "1", "2")
    assert raised.value.code == -40002


def test_errors_share_the_base_class_and_carry_codes() -> None:
    codes = {
        InvalidSignatureError: -40001,
        MalformedEnvelopeError: -40002,
        InvalidAesKeyError: -40004,
        ReceiveIdMismatchError: -40005,
        DecryptionError: -40007,
        IllegalBufferError: -40008,
        Base64DecodeError: -40010,
    }
    for error_type, code in codes.items():
        assert issubclass(error_type, CallbackCryptoError)
        error = error_type("why")
        assert error.code == code
        assert str(code) in str(error)


# ---------------------------------------------------------------- exact base64 (wechatpy accepts these)


def test_surplus_padding_rejected_though_wechatpy_accepts_it(
    crypto: CallbackCrypto, wechatpy_crypto: WeChatCrypto
) -> None:
    message = "<xml>" + "p" * 30 + "</xml>"  # frames to 96 bytes, a multiple of 3: base64 without "="
    encrypted = crypto.encrypt(message)
    assert not encrypted.endswith("=")
    surplus = encrypted + "="
    signature = crypto.signature("1", "2", surplus)
    body = crypto.envelope_body(surplus, 1)
    assert wechatpy_crypto.decrypt_message(body, signature, "1", "2") == message
    with pytest.raises(Base64DecodeError):
        crypto.decrypt_envelope(body, signature, "1", "2")


def test_non_canonical_trailing_bits_rejected(crypto: CallbackCrypto) -> None:
    encrypted = VERIFY_ECHOSTR  # ends "A==": the last character's low 4 bits are unused
    assert encrypted.endswith("A==")
    twin = encrypted[:-3] + "B=="  # decodes to the same bytes
    assert base64.b64decode(twin) == base64.b64decode(encrypted)
    with pytest.raises(Base64DecodeError):
        crypto.decrypt(twin)


def test_inconsistent_padding_that_wechatpy_accepts_is_rejected(
    crypto: CallbackCrypto, wechatpy_crypto: WeChatCrypto
) -> None:
    framed = b"R" * 16 + struct.pack(">I", 2) + b"hi" + CORP_ID.encode()
    pad = 64 - len(framed)
    encrypted = raw_aes_encrypt(framed + bytes([7]) + bytes([pad]) * (pad - 1))
    signature = crypto.signature("1", "2", encrypted)
    body = crypto.envelope_body(encrypted, 1)
    wechatpy_crypto.decrypt_message(body, signature, "1", "2")  # wechatpy reads only the last byte
    with pytest.raises(IllegalBufferError):
        crypto.decrypt_envelope(body, signature, "1", "2")
