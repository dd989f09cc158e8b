"""minisign secret keys and signing (pure): what ``torfetch sign`` needs, no py-minisign.

Secret key file (minisign 0.11, ``minisign -G``): an untrusted comment line,
then base64 of 158 bytes::

    sig_alg "Ed" ‖ kdf_alg "Sc" (scrypt) or "\\0\\0" (-W: none) ‖ chk_alg "B2"
    ‖ kdf_salt[32] ‖ kdf_opslimit[8, LE] ‖ kdf_memlimit[8, LE]
    ‖ keynum_sk[104] = key_id[8] ‖ ed25519_sk[64] (seed ‖ pk) ‖ chk[32]

With "Sc", keynum_sk is XORed with crypto_pwhash_scryptsalsa208sha256(104
bytes, password, salt, opslimit, memlimit); libsodium turns (opslimit,
memlimit) into scrypt's (N, r, p) with its ``pickparams``, reproduced here.
chk = BLAKE2b-256(sig_alg ‖ key_id ‖ sk): a wrong password shows up as a
checksum mismatch. ``minisign -G -W`` leaves chk all zero.

Signatures are written as pacman-bintrans-sign writes them (rust-minisign):
prehashed ``ED`` over the 64 hex characters of the package sha256, trusted
comment = the package filename.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import ConfigError
from .minisign import PublicKey

MAX_SECRET_KEY_FILE = 4096
_LEN = 158
_MAX_SCRYPT_MEMORY = 2 * 1024 * 1024 * 1024  # minisign's default (1 GiB) with room; refuse more
UNTRUSTED_COMMENT = b"untrusted comment: signature from rsign secret key"


def _pickparams(opslimit: int, memlimit: int) -> tuple[int, int, int]:
    """libsodium's crypto_pwhash_scryptsalsa208sha256 parameter choice: (N, r, p)."""
    opslimit = max(opslimit, 32768)
    r = 8
    if opslimit < memlimit // 32:
        p = 1
        max_n = opslimit // (r * 4)
        n_log2 = 1
        while n_log2 < 63 and (1 << n_log2) <= max_n // 2:
            n_log2 += 1
    else:
        max_n = memlimit // (r * 128)
        n_log2 = 1
        while n_log2 < 63 and (1 << n_log2) <= max_n // 2:
            n_log2 += 1
        max_rp = min((opslimit // 4) // (1 << n_log2), 0x3FFFFFFF)
        p = max_rp // r
    return 1 << n_log2, r, max(p, 1)


@dataclass(frozen=True)
class EncryptedSecretKey:
    """A parsed secret key file, not yet decrypted."""

    kdf: bytes  # b"Sc" or b"\0\0"
    salt: bytes
    opslimit: int
    memlimit: int
    keynum_sk: bytes  # 104 bytes, encrypted when kdf == b"Sc"
    path: str = ""

    @property
    def encrypted(self) -> bool:
        return self.kdf == b"Sc"

    @classmethod
    def parse(cls, data: bytes, *, path: str = "secret key") -> "EncryptedSecretKey":
        if len(data) > MAX_SECRET_KEY_FILE:
            raise ConfigError(f"{path} is not a minisign secret key (too large)")
        lines = [ln.strip() for ln in data.replace(b"\r", b"").split(b"\n") if ln.strip()]
        if lines and lines[0].startswith(b"untrusted comment:"):
            lines = lines[1:]
        if len(lines) != 1:
            raise ConfigError(f"{path} is not a minisign secret key (expected one base64 line after the comment)")
        try:
            raw = base64.b64decode(lines[0], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"{path} is not a minisign secret key (not base64)") from exc
        if len(raw) != _LEN:
            raise ConfigError(f"{path} is not a minisign secret key ({len(raw)} bytes, expected {_LEN})")
        sig_alg, kdf, chk_alg = raw[0:2], raw[2:4], raw[4:6]
        if sig_alg != b"Ed" or chk_alg != b"B2" or kdf not in (b"Sc", b"\0\0"):
            raise ConfigError(f"{path}: unsupported minisign secret key (algorithms {sig_alg!r} {kdf!r} {chk_alg!r})")
        return cls(kdf=kdf, salt=raw[6:38], opslimit=int.from_bytes(raw[38:46], "little"),
                   memlimit=int.from_bytes(raw[46:54], "little"), keynum_sk=raw[54:], path=path)

    def decrypt(self, password: bytes | None) -> "SecretKey":
        """Undo the scrypt encryption (1 GiB and a few seconds for minisign's defaults) and check the checksum."""
        data = self.keynum_sk
        if self.encrypted:
            if password is None:
                raise ConfigError(f"{self.path} is encrypted: give its password (PACMAN_BINTRANS_PASSWORD or a terminal)")
            n, r, p = _pickparams(self.opslimit, self.memlimit)
            need = 128 * r * (n + p + 2)
            if need > _MAX_SCRYPT_MEMORY:
                raise ConfigError(f"{self.path}: its scrypt parameters need {need >> 20} MiB, over the limit")
            stream = hashlib.scrypt(password, salt=self.salt, n=n, r=r, p=p, maxmem=need + (1 << 20), dklen=len(data))
            data = bytes(a ^ b for a, b in zip(data, stream))
        key_id, sk, chk = data[:8], data[8:72], data[72:104]
        want = hashlib.blake2b(b"Ed" + key_id + sk, digest_size=32).digest()
        if not hmac.compare_digest(chk, want) and not (not self.encrypted and chk == b"\0" * 32):
            if self.encrypted:
                raise ConfigError(f"wrong password for the secret key {self.path} (its checksum does not match)")
            raise ConfigError(f"{self.path}: the secret key is corrupt (its checksum does not match)")
        priv = Ed25519PrivateKey.from_private_bytes(sk[:32])
        pk = priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        if pk != sk[32:]:
            raise ConfigError(f"{self.path}: the secret key is corrupt (its public half does not match)")
        return SecretKey(key_id=key_id, private=priv, public=PublicKey(key_id=key_id, raw=pk), path=self.path)


@dataclass(frozen=True)
class SecretKey:
    key_id: bytes
    private: Ed25519PrivateKey = field(repr=False)
    public: PublicKey
    path: str = ""

    def check_matches(self, pub: PublicKey, *, pub_path: str) -> None:
        if pub.key_id != self.key_id or pub.raw != self.public.raw:
            raise ConfigError(
                f"the secret key {self.path} (key id {self.public.key_id_hex}) does not match the public key "
                f"{pub_path} (key id {pub.key_id_hex})")

    def sign(self, message: bytes, trusted_comment: str, *, prehash: bool = True) -> bytes:
        """A minisign signature file (4 lines) over ``message``."""
        tc = trusted_comment.encode("utf-8")
        if any(c < 0x20 or c == 0x7F for c in tc) or len(tc) > 8000:
            raise ConfigError(f"cannot use {trusted_comment[:80]!r} as a trusted comment (control characters or too long)")
        alg = b"ED" if prehash else b"Ed"
        signed = hashlib.blake2b(message, digest_size=64).digest() if prehash else message
        sig = self.private.sign(signed)
        glob = self.private.sign(sig + tc)
        return (UNTRUSTED_COMMENT + b"\n" + base64.b64encode(alg + self.key_id + sig) + b"\n"
                + b"trusted comment: " + tc + b"\n" + base64.b64encode(glob) + b"\n")
