"""The bad inputs of `tests/bad_inputs.rs`, read from that file: the cases of its
`cases()` function, each `(name, file name, contents, texts the error must contain)`.

The Rust test runs them through the `atlas` binary; the Python tests run the same files
through `atlas_mmm` and compare with the binary, so that both fronts stay in step. The
reader understands what the file uses: string literals (plain and raw), `GOOD_CHANNELS`,
`with_header("...")`, `.to_string()` and `+`; anything else is an error here, not a
silently skipped case."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

TOKEN = re.compile(
    r"""
    (?P<raw>r(?P<hashes>\#*)"(?P<rawbody>.*?)"(?P=hashes))
  | (?P<str>"(?P<body>(?:[^"\\]|\\.)*)")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*!?)
  | (?P<punct>[()\[\],+.;&])
  | (?P<ws>\s+|//[^\n]*)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "'": "'", "0": "\0", "r": "\r"}


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: ESCAPES[m.group(1)], body)


def _tokens(text: str):
    out = []
    for m in TOKEN.finditer(text):
        if m.group("ws"):
            continue
        if m.group("raw"):
            out.append(("str", m.group("rawbody")))
        elif m.group("str"):
            out.append(("str", _unescape(m.group("body"))))
        elif m.group("ident"):
            out.append(("ident", m.group("ident")))
        elif m.group("punct"):
            out.append(("punct", m.group("punct")))
        else:
            out.append(("other", m.group("other")))
    return out


def _body(text: str, start: str) -> str:
    """The text of the brace block that follows `start`."""
    i = text.index(start)
    i = text.index("{", i)
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    raise ValueError(f"unbalanced block after {start}")


def load(path: Path) -> List[Tuple[str, str, str, List[str]]]:
    text = path.read_text()
    good = re.search(r'const GOOD_CHANNELS: &str = r#"(.*?)"#;', text, re.DOTALL)
    assert good, "GOOD_CHANNELS not found in tests/bad_inputs.rs"
    good_channels = good.group(1)
    header_fn = _tokens(_body(text, "fn with_header("))
    fmt = [v for k, v in header_fn if k == "str"]
    assert len(fmt) == 1, "with_header: expected one format! string"
    template = fmt[0]

    def with_header(header: str) -> str:
        return template.replace("{header}", header).replace(
            "{GOOD_CHANNELS}", good_channels
        )

    toks = _tokens(_body(text, "fn cases()"))
    pos = 0

    def peek(k=0):
        return toks[pos + k] if pos + k < len(toks) else ("eof", "")

    def take(kind=None, value=None):
        nonlocal pos
        tok = peek()
        if (kind and tok[0] != kind) or (value and tok[1] != value):
            raise ValueError(f"bad_inputs.rs: expected {kind} {value!r}, got {tok!r}")
        pos += 1
        return tok

    def term() -> str:
        kind, value = peek()
        if kind == "str":
            take()
            s = value
        elif kind == "ident" and value == "GOOD_CHANNELS":
            take()
            s = good_channels
        elif kind == "ident" and value == "with_header":
            take()
            take("punct", "(")
            s = with_header(take("str")[1])
            take("punct", ")")
        elif kind == "punct" and value == "&":
            take()
            return term()
        else:
            raise ValueError(f"bad_inputs.rs: cannot read the expression at {peek()!r}")
        while peek() == ("punct", "."):
            take()
            method = take("ident")[1]
            if method not in ("to_string", "to_owned", "into"):
                raise ValueError(f"bad_inputs.rs: unknown method {method}")
            take("punct", "(")
            take("punct", ")")
        return s

    def expr() -> str:
        s = term()
        while peek() == ("punct", "+"):
            take()
            s += term()
        return s

    take("ident", "vec!")
    take("punct", "[")
    cases = []
    while peek() != ("punct", "]"):
        take("punct", "(")
        name = take("str")[1]
        take("punct", ",")
        file = take("str")[1]
        take("punct", ",")
        contents = expr()
        take("punct", ",")
        take("ident", "vec!")
        take("punct", "[")
        expected = []
        while peek() != ("punct", "]"):
            expected.append(take("str")[1])
            if peek() == ("punct", ","):
                take()
        take("punct", "]")
        if peek() == ("punct", ","):
            take()
        take("punct", ")")
        if peek() == ("punct", ","):
            take()
        cases.append((name, file, contents, expected))
    return cases
