"""Fake but format-faithful credential values (right prefixes, lengths, alphabets and checksums), drawn
from a seeded `random.Random` so the corpus is reproducible. Nothing here is a real credential."""

import base64
import json
import random
import string
import zlib
from typing import TypeVar

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_WORDS = [
    "harbor",
    "maple",
    "falcon",
    "copper",
    "lantern",
    "orbit",
    "velvet",
    "summit",
    "quartz",
    "meadow",
    "cobalt",
    "ember",
    "glacier",
    "willow",
    "tundra",
    "saffron",
    "beacon",
    "cinder",
    "marble",
    "prairie",
    "thistle",
    "canyon",
    "juniper",
    "zephyr",
    "walnut",
    "pebble",
    "sierra",
    "kestrel",
    "magnet",
    "violet",
]
_SYMBOLS = "!@#%^&*-_=+.?~"
T = TypeVar("T")


class Values:
    """Every draw goes through one seeded generator, in call order."""

    def __init__(self, seed: str) -> None:
        self.rng = random.Random(seed)

    def pick(self, options: list[T] | tuple[T, ...]) -> T:
        return self.rng.choice(options)

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def digits(self, n: int) -> str:
        return str(self.rng.randint(1, 9)) + self.chars(string.digits, n - 1)

    def b64(self, raw: bytes, *, url: bool = False, pad: bool = True) -> str:
        out = (base64.urlsafe_b64encode if url else base64.b64encode)(raw).decode()
        return out if pad else out.rstrip("=")

    def random_b64(self, n_bytes: int, *, url: bool = False, pad: bool = True) -> str:
        return self.b64(self.rng.randbytes(n_bytes), url=url, pad=pad)

    def word(self) -> str:
        return self.pick(_WORDS)

    # -- human secrets ---------------------------------------------------------------------------

    def password(self) -> str:
        """A password as people choose them: word+digits+symbol, random mix, leetspeak, or a passphrase."""
        style = self.rng.randrange(5)
        if style == 0:
            return f"{self.word().capitalize()}{self.rng.randint(10, 9999)}{self.pick(_SYMBOLS)}"
        if style == 1:
            body = self.chars(ALNUM + _SYMBOLS, self.rng.randint(12, 22))
            return self.pick(string.ascii_letters) + body + self.pick(string.digits)
        if style == 2:
            leet = str.maketrans({"a": "@", "e": "3", "o": "0", "i": "1", "s": "$"})
            return (self.word() + self.word()).capitalize().translate(leet) + str(self.rng.randint(1, 99))
        if style == 3:
            return "-".join(self.word() for _ in range(4)) + str(self.rng.randint(1, 9))
        return self.chars(ALNUM, self.rng.randint(16, 28))

    def url_password(self) -> str:
        """A password that needs no percent-encoding in a URL."""
        return self.chars(ALNUM, self.rng.randint(10, 20)) + self.pick("-_.~") + self.chars(ALNUM, 4)

    def user(self) -> str:
        return self.pick(("app", "svc_api", "deploy", "admin", "etl_writer", "reporting", "backup", "ci-bot"))

    # -- vendor formats --------------------------------------------------------------------------

    def crc_token(self, prefix: str, n_random: int = 30) -> str:
        """GitHub / npm style: random base62 body plus the base62 CRC32 of the body, 6 chars."""
        body = self.chars(ALNUM, n_random)
        checksum = zlib.crc32(body.encode())
        digits = ""
        while checksum:
            checksum, rem = divmod(checksum, 62)
            digits = _BASE62[rem] + digits
        return prefix + body + digits.rjust(6, "0")

    def jwt(self, claims: dict | None = None, alg: str = "HS256") -> str:
        header = self.b64(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode(), url=True, pad=False)
        iat = 1_790_000_000 + self.rng.randint(0, 10_000_000)
        payload = claims or {"sub": self.digits(8), "name": self.word(), "iat": iat, "exp": iat + 3600}
        body = self.b64(json.dumps(payload, separators=(",", ":")).encode(), url=True, pad=False)
        sig_bytes = 256 if alg.startswith("RS") else 32
        return f"{header}.{body}.{self.random_b64(sig_bytes, url=True, pad=False)}"

    def aws_key_id(self, prefix: str = "AKIA") -> str:
        return prefix + self.chars(BASE32, 16)

    def aws_secret(self) -> str:
        return self.chars(ALNUM + "+/", 40)

    def aws_session_token(self) -> str:
        return "IQoJb3JpZ2luX2VjE" + self.chars(B64, self.rng.randint(300, 420)) + "=="

    def gitlab_routable(self, prefix: str) -> str:
        return f"{prefix}{self.chars(B64URL, 27)}.01.{self.chars(LOWER_ALNUM, 9)}"

    def slack_bot(self) -> str:
        return f"xoxb-{self.digits(12)}-{self.digits(13)}-{self.chars(ALNUM, 24)}"

    def slack_user(self) -> str:
        return f"xoxp-{self.digits(12)}-{self.digits(12)}-{self.digits(13)}-{self.chars(HEX, 32)}"

    def slack_app(self) -> str:
        return f"xapp-1-A{self.chars(UPPER_ALNUM, 10)}-{self.digits(13)}-{self.chars(HEX, 64)}"

    def slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.chars(UPPER_ALNUM, 10)}/B{self.chars(UPPER_ALNUM, 10)}/"
            f"{self.chars(ALNUM, 24)}"
        )

    def openai_key(self) -> str:
        kind = self.rng.randrange(4)
        if kind == 0:
            return f"sk-{self.chars(ALNUM, 20)}T3BlbkFJ{self.chars(ALNUM, 20)}"
        prefix = ("sk-proj-", "sk-svcacct-", "sk-admin-")[kind - 1]
        return f"{prefix}{self.chars(B64URL, 74)}T3BlbkFJ{self.chars(B64URL, 74)}"

    def anthropic_key(self) -> str:
        return f"sk-ant-{self.pick(('api03', 'admin01'))}-{self.chars(B64URL, 93)}AA"

    def pem_body(self, header: str, n_bytes: int) -> str:
        """A DER-looking base64 body: the real ASN.1 prefix of the key type, then random bytes."""
        return header + self.random_b64(n_bytes)[len(header) :]

    def one_password_service_token(self) -> str:
        doc = {
            "signInAddress": "my.1password.com",
            "userAuth": {
                "method": "SRPg-4096",
                "alg": "PBES2g-HS256",
                "iterations": 650000,
                "salt": self.random_b64(16, url=True, pad=False),
            },
            "email": f"{self.chars(LOWER_ALNUM, 13)}@1passwordserviceaccounts.com",
            "srpX": self.chars(HEX, 64),
            "muk": {
                "alg": "A256GCM",
                "ext": True,
                "k": self.random_b64(32, url=True, pad=False),
                "key_ops": ["encrypt", "decrypt"],
                "kty": "oct",
                "kid": "mp",
            },
            "secretKey": self.one_password_secret_key(),
            "throttleSecret": {"seed": self.chars(HEX, 64), "deviceUuid": self.chars(LOWER_ALNUM, 26)},
            "deviceUuid": self.chars(LOWER_ALNUM, 26),
        }
        return "ops_" + self.b64(json.dumps(doc, separators=(",", ":")).encode(), pad=False)

    def one_password_secret_key(self) -> str:
        groups = [self.chars(UPPER_ALNUM, 6), self.chars(UPPER_ALNUM, 6)] + [
            self.chars(UPPER_ALNUM, 5) for _ in range(4)
        ]
        return "A3-" + "-".join(groups)

    def discord_bot(self) -> str:
        user_id = self.b64(self.digits(18).encode(), pad=False)
        return f"{user_id}.{self.chars(B64URL, 6)}.{self.chars(B64URL, 38)}"

    def telegram_bot(self) -> str:
        return f"{self.digits(10)}:AA{self.chars(B64URL, 33)}"

    def uuid4(self) -> str:
        return (
            f"{self.chars(HEX, 8)}-{self.chars(HEX, 4)}-4{self.chars(HEX, 3)}-{self.pick('89ab')}{self.chars(HEX, 3)}-"
            f"{self.chars(HEX, 12)}"
        )

    def ipv4(self) -> str:
        first = self.pick((10, 172, 192, 34, 52, 81, 95, 141, 185, 203))
        if first == 192:
            return f"192.168.{self.rng.randint(0, 254)}.{self.rng.randint(2, 254)}"
        return f"{first}.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}.{self.rng.randint(2, 254)}"

    def ipv6(self) -> str:
        groups = [self.pick(("2001", "2a02", "2606", "fd12"))] + [
            self.chars(HEX, 4).lstrip("0") or "0" for _ in range(7)
        ]
        return ":".join(groups) if self.rng.random() < 0.5 else ":".join(groups[:4]) + "::" + groups[7]
