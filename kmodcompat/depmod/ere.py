"""POSIX extended regular expressions as glibc's regcomp()/regexec() read them, in bounded time.

depmod matches the kernel field of ``override`` and ``external`` lines with
``regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB)`` then ``regexec(&re,
kversion, 0, NULL, 0)`` (tools/depmod.c ``cfg_kernel_matches()``, kmod 30 to
34.2; not fnmatch). depmod never calls setlocale(), so this is the C locale:
one byte is one character, ranges go by byte value, ``[:alpha:]`` is ASCII.

The parser follows glibc posix/regcomp.c (``peek_token()``,
``parse_reg_exp()``, ``parse_branch()``, ``parse_expression()``,
``parse_dup_op()``, ``fetch_number()``, ``parse_bracket_exp()``,
``parse_bracket_element()``, ``parse_bracket_symbol()``,
``build_charclass()``) with the syntax bits of ``RE_SYNTAX_POSIX_EXTENDED``:
``|``, ``()``, ``{m,n}`` and ``{,n}`` unescaped; ``^`` and ``$`` anchors
anywhere; a repetition operator at the start of an expression, after ``(``,
``|`` or an anchor is an error; an unmatched ``)`` is an ordinary character;
backslash is literal inside brackets; GNU operators ``\\w \\W \\s \\S \\b \\B
\\< \\> \\``` \\'`` and back-references ``\\1``-``\\9`` are on. A pattern glibc
refuses does not match (depmod treats a regcomp() failure as "no match").

Only whether the pattern matches somewhere matters (REG_NOSUB). A pattern
without back-references runs on a Thompson NFA: time len(program) x
len(text), never backtracking, whatever the pattern. Back-references need a
search; it is memoised and capped. Anything past the caps (nesting, program
size, steps) raises :class:`PatternTooComplex` instead of running on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

#: A parse tree node: ("set", bytes), ("cat", a, b), ("alt", a, b), ("group", n, t), ("rep", t, lo, hi),
#: ("assert", kind), ("backref", n); None for the empty expression.
Node = tuple[Any, ...] | None
#: One compiled instruction: its opcode and operands.
Instruction = tuple[Any, ...]

__all__ = ["PatternTooComplex", "compile_ere", "ere_search", "Program"]

#: RE_DUP_MAX of glibc's regex.h: the largest count of an interval expression.
RE_DUP_MAX = 0x7FFF
#: Nesting of groups the parser follows (glibc recurses without limit and
#: overflows its stack somewhere past 100,000 levels).
MAX_DEPTH = 100
#: Instructions in a compiled program: ``{m,n}`` copies its operand, so "(a{99}){99}"
#: is 9,801 of them. glibc builds them all too (and a DFA lazily).
MAX_PROGRAM = 20000
#: Steps the back-reference search may take.
MAX_BACKTRACK_STEPS = 200000

#: BRACKET_NAME_BUF_SIZE: the longest name between ``[:`` and ``:]`` (or ``.``, ``=``).
_BRACKET_NAME_MAX = 32


class PatternTooComplex(ValueError):
    """The pattern is beyond what kmodcompat matches in bounded time (real patterns are far below)."""


class _RegError(Exception):
    """regcomp() would fail (REG_BADRPT, REG_EBRACK, ...): the pattern matches nothing."""


# -- the C locale's <ctype.h> ------------------------------------------------------------------

def _bytes_where(test: Callable[[int], bool]) -> frozenset[int]:
    return frozenset(c for c in range(256) if test(c))


_UPPER = _bytes_where(lambda c: 0x41 <= c <= 0x5A)
_LOWER = _bytes_where(lambda c: 0x61 <= c <= 0x7A)
_DIGIT = _bytes_where(lambda c: 0x30 <= c <= 0x39)
_ALPHA = _UPPER | _LOWER
_ALNUM = _ALPHA | _DIGIT
_GRAPH = _bytes_where(lambda c: 0x21 <= c <= 0x7E)
CHAR_CLASSES = {
    "alnum": _ALNUM, "alpha": _ALPHA, "digit": _DIGIT, "lower": _LOWER, "upper": _UPPER,
    "space": frozenset(b" \t\n\v\f\r"), "blank": frozenset(b" \t"),
    "cntrl": _bytes_where(lambda c: c < 0x20 or c == 0x7F), "print": _GRAPH | {0x20}, "graph": _GRAPH,
    "punct": _GRAPH - _ALNUM, "xdigit": _DIGIT | frozenset(b"abcdefABCDEF"),
}
_ALL = frozenset(range(256))
_WORD = _ALNUM | {0x5F}  # IS_WORD_CHAR(): isalnum() || '_'
_DOT = _ALL - {0}  # RE_DOT_NOT_NULL; RE_DOT_NEWLINE lets it match '\n'

# Zero-width assertions (glibc's ANCHOR context types).
LINE_FIRST, LINE_LAST, BUF_FIRST, BUF_LAST = "^", "$", "`", "'"
WORD_FIRST, WORD_LAST, INSIDE_WORD, INSIDE_NOTWORD = "<", ">", "w", "W"

# -- tokens (peek_token()) ---------------------------------------------------------------------

_CHAR, _END, _BACKSLASH, _ALT, _STAR, _PLUS, _QUESTION, _OPEN_DUP, _CLOSE_DUP = range(9)
_OPEN_SUB, _CLOSE_SUB, _OPEN_BRACKET, _PERIOD, _ANCHOR, _BACKREF, _CLASS_OP = range(9, 16)
_PLAIN = {ord("|"): _ALT, ord("*"): _STAR, ord("+"): _PLUS, ord("?"): _QUESTION, ord("{"): _OPEN_DUP,
          ord("}"): _CLOSE_DUP, ord("("): _OPEN_SUB, ord(")"): _CLOSE_SUB, ord("["): _OPEN_BRACKET,
          ord("."): _PERIOD}
_ESCAPED_ANCHORS = {ord("<"): WORD_FIRST, ord(">"): WORD_LAST, ord("`"): BUF_FIRST, ord("'"): BUF_LAST,
                    ord("b"): "b", ord("B"): "B"}
_ESCAPED_CLASSES = {ord("w"): _WORD, ord("W"): _ALL - _WORD, ord("s"): CHAR_CLASSES["space"],
                    ord("S"): _ALL - CHAR_CLASSES["space"]}


#: A parse-tree node: (kind, operands...), as glibc's bin_tree_t with its token type first.
_Node = tuple[Any, ...]


class _Token(NamedTuple):
    kind: int
    c: int = 0  # the byte (for _CHAR, and what fetch_number() looks at for any token)
    arg: object = None  # anchor type, back-reference index, class set


# -- the tree ----------------------------------------------------------------------------------
# ("set", frozenset) | ("cat", a, b) | ("alt", a, b | None) | ("star", a) | ("group", i, a | None)
# | ("assert", kind) | ("backref", i); None is the empty expression.


class _Parser:
    def __init__(self, pattern: bytes):
        self.p = pattern
        self.pos = 0
        self.nsub = 0
        self.completed = 0  # completed_bkref_map
        self.backrefs = False
        self.token = self._fetch()

    # peek_token(), then skipping it
    def _fetch(self) -> _Token:
        p, i = self.p, self.pos
        if i >= len(p):
            return _Token(_END)
        c = p[i]
        if c == 0x5C:  # backslash
            if i + 1 >= len(p):
                self.pos = i + 1
                return _Token(_BACKSLASH, c)
            c2 = p[i + 1]
            self.pos = i + 2
            if 0x31 <= c2 <= 0x39:
                return _Token(_BACKREF, c2, c2 - 0x31)
            if c2 in _ESCAPED_ANCHORS:
                return _Token(_ANCHOR, c2, _ESCAPED_ANCHORS[c2])
            if c2 in _ESCAPED_CLASSES:
                return _Token(_CLASS_OP, c2, _ESCAPED_CLASSES[c2])
            return _Token(_CHAR, c2)  # \| \( \{ \+ ... are plain characters in ERE
        self.pos = i + 1
        if c == 0x5E:
            return _Token(_ANCHOR, c, LINE_FIRST)
        if c == 0x24:
            return _Token(_ANCHOR, c, LINE_LAST)
        return _Token(_PLAIN.get(c, _CHAR), c)

    def _next(self) -> None:
        self.token = self._fetch()

    def parse(self) -> Node:
        tree = self.reg_exp(0)
        if self.token.kind != _END:  # cannot happen at nest 0; kept as glibc's invariant
            raise _RegError("EPAREN")
        return tree

    def reg_exp(self, nest: int) -> Node:
        """parse_reg_exp(): branches joined by '|' (an empty branch matches the empty string)."""
        initial = self.completed
        tree = self.branch(nest)
        while self.token.kind == _ALT:
            self._next()
            t = self.token.kind
            branch = None
            if t != _ALT and t != _END and (nest == 0 or t != _CLOSE_SUB):
                # A back-reference cannot name a group of another alternative: the
                # initial_bkref_map of parse_reg_exp() in current glibc (2.36 on Debian 12).
                accumulated, self.completed = self.completed, initial
                branch = self.branch(nest)
                self.completed |= accumulated
            tree = ("alt", tree, branch)
        return tree

    def branch(self, nest: int) -> Node:
        tree = self.expression(nest)
        while True:
            t = self.token.kind
            if t == _ALT or t == _END or (nest and t == _CLOSE_SUB):
                return tree
            exp = self.expression(nest)
            if tree is not None and exp is not None:
                tree = ("cat", tree, exp)
            elif tree is None:
                tree = exp

    def expression(self, nest: int) -> _Node | None:
        tok = self.token
        tree: _Node | None
        kind = tok.kind
        if kind == _CHAR or kind == _CLOSE_DUP or kind == _CLOSE_SUB:
            tree = ("set", frozenset((tok.c,)))  # RE_UNMATCHED_RIGHT_PAREN_ORD: ')' is a character
        elif kind == _OPEN_SUB:
            if nest >= MAX_DEPTH:
                raise PatternTooComplex(f"groups nested deeper than {MAX_DEPTH}")
            tree = self.sub_exp(nest + 1)
        elif kind == _OPEN_BRACKET:
            tree = ("set", self.bracket())
        elif kind == _BACKREF:
            assert isinstance(tok.arg, int)
            if not self.completed & (1 << tok.arg):
                raise _RegError("ESUBREG")
            self.backrefs = True
            tree = ("backref", tok.arg)
        elif kind in (_OPEN_DUP, _STAR, _PLUS, _QUESTION):
            raise _RegError("BADRPT")  # RE_CONTEXT_INVALID_OPS
        elif kind == _ANCHOR:
            a = tok.arg
            if a == "b":
                tree = ("alt", ("assert", WORD_FIRST), ("assert", WORD_LAST))
            elif a == "B":
                tree = ("alt", ("assert", INSIDE_WORD), ("assert", INSIDE_NOTWORD))
            else:
                tree = ("assert", a)
            self._next()
            return tree  # "ANCHORs can't be followed by repetition operators": "^*" is BADRPT
        elif kind == _PERIOD:
            tree = ("set", _DOT)
        elif kind == _CLASS_OP:
            tree = ("set", tok.arg)
        elif kind == _BACKSLASH:
            raise _RegError("EESCAPE")
        else:  # _ALT, _END
            return None
        self._next()
        while self.token.kind in (_STAR, _PLUS, _QUESTION, _OPEN_DUP):
            tree = self.dup_op(tree)
        return tree

    def sub_exp(self, nest: int) -> Node:
        index = self.nsub
        self.nsub += 1
        self._next()
        if self.token.kind == _CLOSE_SUB:
            tree = None  # "()" matches the empty string
        else:
            tree = self.reg_exp(nest)
            if self.token.kind != _CLOSE_SUB:
                raise _RegError("EPAREN")
        if index <= 8:
            self.completed |= 1 << index
        return ("group", index, tree)

    def _number(self) -> tuple[int, _Token]:
        """fetch_number(): -1 for an empty field, -2 for anything not a number up to ',' or '}'."""
        num = -1
        while True:
            self._next()
            tok = self.token
            if tok.kind == _END:
                return -2, tok
            if tok.kind == _CLOSE_DUP or tok.c == 0x2C:
                return num, tok
            if tok.kind != _CHAR or not 0x30 <= tok.c <= 0x39 or num == -2:
                num = -2
            else:
                num = tok.c - 0x30 if num == -1 else num * 10 + tok.c - 0x30
                if num > RE_DUP_MAX:
                    num = -2

    def dup_op(self, elem: Node) -> Node:
        """parse_dup_op(): ``*``, ``+``, ``?``, ``{n}``, ``{n,}``, ``{,m}``, ``{n,m}``."""
        kind = self.token.kind
        if kind == _OPEN_DUP:
            start, tok = self._number()
            if start == -1:
                if tok.kind == _CHAR and tok.c == 0x2C:
                    start = 0  # "{,m}" is "{0,m}"
                else:
                    raise _RegError("BADBR")  # "{}"
            end = 0
            if start != -2:
                if tok.kind == _CLOSE_DUP:
                    end = start
                elif tok.c == 0x2C and tok.kind == _CHAR:
                    end, tok = self._number()
                else:
                    end = -2
            if start == -2 or end == -2:
                raise _RegError("EBRACE" if tok.kind == _END else "BADBR")
            if (end != -1 and start > end) or tok.kind != _CLOSE_DUP:
                raise _RegError("BADBR")
        else:
            start = 1 if kind == _PLUS else 0
            end = 1 if kind == _QUESTION else -1
        self._next()
        if elem is None or (start == 0 and end == 0):
            return None
        return ("rep", elem, start, end)

    # -- brackets ------------------------------------------------------------------------------

    def _peek_bracket(self) -> tuple[str, int, int]:
        """peek_token_bracket(): (kind, byte, length)."""
        p, i = self.p, self.pos
        if i >= len(p):
            return "end", 0, 0
        c = p[i]
        if c == 0x5B and i + 1 < len(p) and p[i + 1] in b".=:":
            return "open" + chr(p[i + 1]), p[i + 1], 2
        if c == 0x2D:
            return "range", c, 1
        if c == 0x5D:
            return "close", c, 1
        if c == 0x5E:
            return "not", c, 1
        return "char", c, 1

    def _element(self, tok: tuple[str, int, int], accept_hyphen: bool) -> tuple[str, object]:
        """parse_bracket_element() and parse_bracket_symbol(): ("char", byte) or (type, name)."""
        kind, c, length = tok
        self.pos += length
        if kind.startswith("open"):
            p = self.p
            if self.pos >= len(p):
                raise _RegError("EBRACK")
            name = bytearray()
            while True:
                if len(name) >= _BRACKET_NAME_MAX:
                    raise _RegError("EBRACK")
                ch = p[self.pos]
                self.pos += 1
                if self.pos >= len(p):
                    raise _RegError("EBRACK")
                if ch == c and p[self.pos] == 0x5D:
                    break
                name.append(ch)
            self.pos += 1
            return {".": "coll", "=": "equiv", ":": "class"}[chr(c)], bytes(name)
        if kind == "range" and not accept_hyphen and self._peek_bracket()[0] != "close":
            raise _RegError("ERANGE")  # a '-' that is neither first, last nor a range end
        return "char", c

    @staticmethod
    def _collation_value(elem: tuple[str, object]) -> int:
        kind, v = elem
        if kind == "char" and isinstance(v, int):
            return v
        if kind == "coll" and isinstance(v, bytes) and len(v) == 1:
            return v[0]
        raise _RegError("ECOLLATE")

    def bracket(self) -> frozenset[int]:
        """parse_bracket_exp(), after the '['."""
        members: set[int] = set()
        tok = self._peek_bracket()
        if tok[0] == "end":
            raise _RegError("BADPAT")
        non_match = tok[0] == "not"
        if non_match:
            self.pos += tok[2]
            tok = self._peek_bracket()
            if tok[0] == "end":
                raise _RegError("BADPAT")
        if tok[0] == "close":
            tok = ("char",) + tok[1:]  # the first ']' is an ordinary character
        first = True
        while True:
            start = self._element(tok, first)
            first = False
            tok = self._peek_bracket()
            is_range = False
            if start[0] not in ("class", "equiv"):
                if tok[0] == "end":
                    raise _RegError("EBRACK")
                if tok[0] == "range":
                    self.pos += tok[2]
                    tok2 = self._peek_bracket()
                    if tok2[0] == "end":
                        raise _RegError("EBRACK")
                    if tok2[0] == "close":
                        self.pos -= tok[2]  # a last '-' is an ordinary character
                        tok = ("char",) + tok[1:]
                    else:
                        is_range = True
            if is_range:
                end = self._element(tok2, True)
                tok = self._peek_bracket()
                if start[0] in ("class", "equiv") or end[0] in ("class", "equiv"):
                    raise _RegError("ERANGE")
                lo, hi = self._collation_value(start), self._collation_value(end)
                if lo > hi:
                    raise _RegError("ERANGE")  # RE_NO_EMPTY_RANGES
                members.update(range(lo, hi + 1))
            else:
                kind, v = start
                if kind == "char":
                    members.add(v)  # type: ignore[arg-type]
                elif kind == "class":
                    cls = CHAR_CLASSES.get(v.decode("latin-1"))  # type: ignore[attr-defined]
                    if cls is None:
                        raise _RegError("ECTYPE")
                    members |= cls
                elif len(v) == 1:  # type: ignore[arg-type]
                    members.add(v[0])  # type: ignore[index]
                else:
                    raise _RegError("ECOLLATE")  # no multi-character collating elements in the C locale
            if tok[0] == "end":
                raise _RegError("EBRACK")
            if tok[0] == "close":
                break
        self.pos += tok[2]
        return _ALL - members if non_match else frozenset(members)


# -- the program -------------------------------------------------------------------------------

_SET, _SPLIT, _JMP, _ASSERT, _SAVE, _BACKREF_OP, _MATCH = range(7)
_NO_CAPTURES = (None,) * 18  # start and end of groups 1 to 9


class Program(NamedTuple):
    code: tuple[Instruction, ...]
    backrefs: bool


def _compile(tree: Node, captures: bool) -> tuple[Instruction, ...]:
    """The tree as instructions, built with a work list (a pattern's tree is as deep as it is long)."""
    code: list[list[Any]] = []

    def emit(*ins: Any) -> int:
        if len(code) >= MAX_PROGRAM:
            raise PatternTooComplex(f"more than {MAX_PROGRAM} instructions")
        code.append(list(ins))
        return len(code) - 1

    def here() -> int:
        return len(code)

    # Each task is a tree to compile or a callable to run at that point of the program.
    todo: list[Any] = [tree]  # trees and closures (lambdas mypy cannot type)
    tasks = 0
    while todo:
        tasks += 1
        if tasks > 4 * MAX_PROGRAM:  # empty operands ("(){99}") emit nothing but still cost
            raise PatternTooComplex(f"more than {MAX_PROGRAM} instructions")
        t = todo.pop()
        if t is None:
            continue
        if callable(t):
            t()
            continue
        op = t[0]
        if op == "set":
            emit(_SET, t[1])
        elif op == "cat":
            todo += (t[2], t[1])
        elif op == "alt":  # SPLIT(left, right); left; JMP end; right
            box: list[int] = []

            def start_alt(box: list[int] = box) -> None:
                box.append(emit(_SPLIT, here() + 1, None))

            def middle(box: list[int] = box) -> None:
                box.append(emit(_JMP, None))
                code[box[0]][2] = here()

            def end_alt(box: list[int] = box) -> None:
                code[box[1]][1] = here()

            todo += (end_alt, t[2], middle, t[1], start_alt)
        elif op == "group":
            if captures and t[1] <= 8:  # only \1 to \9 can refer back
                todo += (lambda slot=2 * t[1] + 1: emit(_SAVE, slot), t[2], lambda slot=2 * t[1]: emit(_SAVE, slot))
            else:
                todo.append(t[2])
        elif op == "assert":
            emit(_ASSERT, t[1])
        elif op == "backref":
            emit(_BACKREF_OP, t[1])
        else:  # ("rep", elem, start, end): start copies, then a loop or end - start optional copies
            _, elem, start, end = t
            splits: list[int] = []
            tail: list[Any] = []
            if end == -1:
                tail = [lambda s=splits: s.append(emit(_SPLIT, here() + 1, None)), elem,
                        lambda s=splits: (emit(_JMP, s[0]), code[s[0]].__setitem__(2, here()))]
            else:
                for _ in range(end - start):
                    tail += (lambda s=splits: s.append(emit(_SPLIT, here() + 1, None)), elem)
                tail.append(lambda s=splits: [code[i].__setitem__(2, here()) for i in s])
            if start + len(tail) > MAX_PROGRAM:
                raise PatternTooComplex(f"more than {MAX_PROGRAM} instructions")
            todo += reversed([elem] * start + tail)
    emit(_MATCH)
    return tuple(tuple(i) for i in code)


def compile_ere(pattern: bytes) -> Program | None:
    """The program for ``pattern``, or None where glibc's regcomp() fails (then nothing matches).

    Raises :class:`PatternTooComplex` past the caps.
    """
    try:
        parser = _Parser(pattern)
        tree = parser.parse()
    except _RegError:
        return None
    return Program(_compile(tree, parser.backrefs), parser.backrefs)


def _holds(kind: str, text: bytes, i: int) -> bool:
    if kind == LINE_FIRST or kind == BUF_FIRST:
        return i == 0
    if kind == LINE_LAST or kind == BUF_LAST:
        return i == len(text)
    before = i > 0 and text[i - 1] in _WORD
    after = i < len(text) and text[i] in _WORD
    if kind == WORD_FIRST:
        return not before and after
    if kind == WORD_LAST:
        return before and not after
    if kind == INSIDE_WORD:
        return before and after
    return not before and not after  # INSIDE_NOTWORD


def ere_search(prog: Program, text: bytes) -> bool:
    """regexec() != REG_NOMATCH: does ``prog`` match somewhere in ``text``?"""
    if prog.backrefs:
        return _backtrack(prog.code, text)
    code = prog.code
    n = len(text)
    current: list[int] = []
    for i in range(n + 1):
        # Every position is a start (regexec() searches); threads are program counters at SET
        # instructions, each at most once per position, so a step costs O(len(code)).
        seen: set[int] = set()
        stack = [0] + current[::-1]
        current = []
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            ins = code[pc]
            op = ins[0]
            if op == _SET:
                current.append(pc)
            elif op == _SPLIT:
                stack.append(ins[2])
                stack.append(ins[1])
            elif op == _JMP:
                stack.append(ins[1])
            elif op == _ASSERT:
                if _holds(ins[1], text, i):
                    stack.append(pc + 1)
            elif op == _SAVE:
                stack.append(pc + 1)
            elif op == _MATCH:
                return True
        if i == n:
            return False
        c = text[i]
        current = [pc + 1 for pc in current if c in code[pc][1]]
    return False


def _backtrack(code: tuple[Instruction, ...], text: bytes) -> bool:
    """Any path to MATCH with back-references as captured on it; (pc, position, captures) visited once."""
    n = len(text)
    steps = 0
    seen: set[tuple[int, int, tuple[int | None, ...]]] = set()
    for start in range(n + 1):
        stack: list[tuple[int, int, tuple[int | None, ...]]] = [(0, start, _NO_CAPTURES)]
        while stack:
            pc, i, caps = stack.pop()
            state = (pc, i, caps)
            if state in seen:
                continue
            seen.add(state)
            steps += 1
            if steps > MAX_BACKTRACK_STEPS:
                raise PatternTooComplex(f"back-references need more than {MAX_BACKTRACK_STEPS} steps")
            ins = code[pc]
            op = ins[0]
            if op == _SET:
                if i < n and text[i] in ins[1]:
                    stack.append((pc + 1, i + 1, caps))
            elif op == _SPLIT:
                stack.append((ins[2], i, caps))
                stack.append((ins[1], i, caps))
            elif op == _JMP:
                stack.append((ins[1], i, caps))
            elif op == _ASSERT:
                if _holds(ins[1], text, i):
                    stack.append((pc + 1, i, caps))
            elif op == _SAVE:
                slot = ins[1]
                stack.append((pc + 1, i, caps[:slot] + (i,) + caps[slot + 1:]))
            elif op == _BACKREF_OP:
                k = ins[1]
                if caps[2 * k] is not None and caps[2 * k + 1] is not None:
                    piece = text[caps[2 * k]:caps[2 * k + 1]]
                    if text.startswith(piece, i):
                        stack.append((pc + 1, i + len(piece), caps))
            else:
                return True
    return False
