"""Build a signed pacman repository on disk, as an operator would.

Packages come from ``tests.pkgbuild`` (makepkg's member order), transparency
signatures from Debian's ``minisign`` binary (prehashed by default, legacy on
request) over the package's lowercase hex sha256 with the filename as trusted
comment (what pacman-bintrans-sign writes), the db from pacman's ``repo-add``.
Optionally every package is also GPG-signed and the signatures embedded in the
db (``%PGPSIG%``), as Arch's official repos do.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.pkgbuild import build_package

ARCH = "x86_64"


@dataclass
class MinisignKey:
    pub: Path
    sec: Path

    @property
    def pub_line(self) -> str:
        return self.pub.read_text().splitlines()[1].strip()

    @classmethod
    def generate(cls, directory: Path, name: str = "key") -> "MinisignKey":
        directory.mkdir(parents=True, exist_ok=True)
        pub, sec = directory / f"{name}.pub", directory / f"{name}.key"
        for p in (pub, sec):
            if p.exists():
                p.unlink()
        subprocess.run(["minisign", "-G", "-W", "-p", str(pub), "-s", str(sec)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        return cls(pub, sec)

    def sign_hex(self, sha256_hex: str, trusted_comment: str, out: Path, *, legacy: bool = False) -> Path:
        msg = out.with_suffix(out.suffix + ".msg")
        msg.write_bytes(sha256_hex.encode())
        cmd = ["minisign", "-S", "-s", str(self.sec), "-m", str(msg), "-x", str(out), "-t", trusted_comment]
        if legacy:
            cmd.insert(2, "-l")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        msg.unlink()
        return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class GpgSigner:
    home: Path
    fingerprint: str

    @classmethod
    def generate(cls, home: Path) -> "GpgSigner":
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        env = {**os.environ, "GNUPGHOME": str(home)}
        subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
                        "torfetch test repo <repo@example.invalid>", "ed25519", "sign", "never"],
                       check=True, env=env, capture_output=True, timeout=60)
        out = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], check=True, env=env,
                             capture_output=True, text=True, timeout=30).stdout
        fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
        return cls(home, fpr)

    def sign(self, path: Path) -> Path:
        env = {**os.environ, "GNUPGHOME": str(self.home)}
        subprocess.run(["gpg", "--batch", "--yes", "--detach-sign", "--no-armor", "-o", str(path) + ".sig", str(path)],
                       check=True, env=env, capture_output=True, timeout=60)
        return Path(str(path) + ".sig")

    def export_into_pacman_keyring(self, gpgdir: Path) -> None:
        """Make pacman's GPGDir trust this key fully (what pacman-key --lsign does)."""
        gpgdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        src = {**os.environ, "GNUPGHOME": str(self.home)}
        dst = {**os.environ, "GNUPGHOME": str(gpgdir)}
        pub = subprocess.run(["gpg", "--batch", "--export", self.fingerprint], check=True, env=src,
                             capture_output=True, timeout=30).stdout
        subprocess.run(["gpg", "--batch", "--import"], input=pub, check=True, env=dst, capture_output=True, timeout=30)
        subprocess.run(["gpg", "--batch", "--import-ownertrust"], input=f"{self.fingerprint}:6:\n".encode(),
                       check=True, env=dst, capture_output=True, timeout=30)


@dataclass
class Repo:
    root: Path  # served directory: root/repo (packages + db), root/sigs (.t files)
    key: MinisignKey
    name: str = "test"
    packages: dict[str, Path] = field(default_factory=dict)  # pkgname → package path
    gpg: GpgSigner | None = None

    @property
    def repo_dir(self) -> Path:
        return self.root / "repo"

    @property
    def sig_dir(self) -> Path:
        return self.root / "sigs"

    def add(self, name: str, version: str = "1.0-1", *, files: dict[str, bytes] | None = None,
            legacy: bool = False, compression: str = "zst", sign: bool = True) -> Path:
        self.repo_dir.mkdir(parents=True, exist_ok=True)
        self.sig_dir.mkdir(parents=True, exist_ok=True)
        files = files if files is not None else {f"usr/share/{name}/hello.txt": f"hello from {name}\n".encode()}
        pkg = build_package(self.repo_dir, name, version, ARCH, files=files, compression=compression)
        if sign:
            self.key.sign_hex(sha256_file(pkg), pkg.name, self.sig_dir / (pkg.name + ".t"), legacy=legacy)
        if self.gpg is not None:
            self.gpg.sign(pkg)
        subprocess.run(["repo-add", "-q", str(self.repo_dir / f"{self.name}.db.tar.gz"), str(pkg)],
                       check=True, capture_output=True, timeout=60)
        self.packages[name] = pkg
        return pkg

    def sig_path(self, name: str) -> Path:
        return self.sig_dir / (self.packages[name].name + ".t")

    def rename_in_db(self, name: str, new_filename: str) -> Path:
        """Do what a hostile mirror can: rewrite a package's %FILENAME% in the (unsigned) db and serve
        the same bytes under the new name. Nothing else changes (%NAME%, %VERSION%, %PGPSIG% stay valid)."""
        import io
        import tarfile

        db = self.repo_dir / f"{self.name}.db.tar.gz"
        old = self.packages[name]
        members: list[tuple[tarfile.TarInfo, bytes | None]] = []
        found = False
        with tarfile.open(db, "r:gz") as tf:
            for m in tf.getmembers():
                data = tf.extractfile(m).read() if m.isfile() else None
                if data is not None and m.name.endswith("/desc") and f"%FILENAME%\n{old.name}\n".encode() in data:
                    data = data.replace(f"%FILENAME%\n{old.name}\n".encode(), f"%FILENAME%\n{new_filename}\n".encode())
                    m.size = len(data)
                    found = True
                members.append((m, data))
        assert found, f"{old.name} is not in {db}"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for m, data in members:
                tf.addfile(m, io.BytesIO(data) if data is not None else None)
        db.write_bytes(buf.getvalue())
        new = self.repo_dir / new_filename
        old.rename(new)
        self.packages[name] = new
        return new


def make_repo(root: Path, *, gpg: bool = False) -> Repo:
    root.mkdir(parents=True, exist_ok=True)
    key = MinisignKey.generate(root / "keys")
    signer = GpgSigner.generate(root / "gpg-operator") if gpg else None
    return Repo(root=root, key=key, gpg=signer)


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)
