"""The parser: ``.eie`` text to a ``Program`` (grammar in ``isa/grammar.lark``).

Lark's LALR parser with the contextual lexer turns the text into a small tree (a hex blob is one
token, so a layer of millions of entries is a handful of tokens); ``_Assembler`` turns the tree
into the typed data model, decoding blobs with numpy and recording a ``SourceLocation`` on every
directive and instruction. Instructions are parsed generically and mapped to their classes
through ``INSTRUCTIONS``, whose ``OPERANDS`` give the operand kinds.

Errors: ``ProgramSyntaxError`` for text that does not follow the grammar (file, line, column,
the offending text and what was expected) or an instruction with unknown mnemonic or wrong
operands; ``VerificationError`` for the rules of SPEC section 7 that the data model cannot hold
(a duplicate name, per-PE pointer and entry counts) and for an invalid ``.machine`` header or
layer shape, without which the data sections cannot be read. Everything else is the verifier's.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, NoReturn, TypeVar

import lark
import numpy as np
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedToken
from lark.lexer import PatternStr

from eiec.errors import ProgramSyntaxError, SourceLocation, VerificationError
from eiec.isa import hexblob
from eiec.isa.cache import cache_dir, digest, write_file
from eiec.isa.program import (
    CHUNK,
    FORMAT_VERSION,
    INSTRUCTIONS,
    LAYER,
    SOURCES,
    TABLE,
    VIEW,
    WORD_BITS,
    WORD_MAX,
    WORD_MIN,
    Buffer,
    Chunk,
    Codebook,
    Instruction,
    Layer,
    Machine,
    One,
    Origin,
    Port,
    Program,
    Table,
    View,
    stored_ptr_bits,
)
from eiec.isa.verifier import check_layer_shape, check_machine, check_pe_count

GRAMMAR = Path(__file__).with_name("grammar.lark")
_Decoded = TypeVar("_Decoded")

#: How error messages name the grammar's terminals (literal ones are shown quoted).
_TERMINAL_NAMES = {
    "NAME": "a name",
    "MNEMONIC": "an instruction",
    "INT": "an integer",
    "REAL": "a number",
    "BLOB": "a hex blob",
    "KEY": "a header key",
    "STRING": 'a "quoted" string',
    "_NL": "end of line",
    "$END": "end of file",
}
#: Operand kinds as error messages name them.
_KIND_NAMES = {
    LAYER: "a layer name",
    TABLE: "a table name",
    VIEW: "a buffer view NAME or NAME[ROW]",
    SOURCES: "a source NAME, NAME[ROW] or #1",
    CHUNK: "a chunk LAYER[INDEX]",
}
#: Longest offending text an error message quotes.
_QUOTE_LIMIT = 24
_WORD = re.compile(r"[^\s,\[\]]+|\S")


#: How the grammar is compiled (part of the cache key).
_LARK_OPTIONS = {"parser": "lalr", "lexer": "contextual", "maybe_placeholders": True}


@functools.cache
def _lark() -> Lark:
    """The LALR parser, built once per grammar: loaded from the cache when a previous process
    saved one for this grammar text, lark version and options, else built (about 30 ms) and
    saved. The key is a hash of all three, so a changed grammar never meets a stale parser; the
    file starts with its key, so one renamed or swapped on disk is rebuilt; an unreadable or
    unwritable cache only costs the build."""
    grammar = GRAMMAR.read_text(encoding="utf-8")
    key = digest(grammar, lark.__version__, str(sorted(_LARK_OPTIONS.items())))[:32]
    try:
        path = cache_dir() / f"isa-grammar-{key}.lark"
    except RuntimeError:  # no home directory to be found
        return Lark(grammar, **_LARK_OPTIONS)
    stamp = f"eiec-grammar {key}\n".encode()
    try:
        with path.open("rb") as file:
            if file.readline() == stamp:  # another entry renamed onto this one is rebuilt
                return Lark.load(file)
    except Exception:  # missing, truncated, or unreadable: rebuild below
        pass
    parser = Lark(grammar, **_LARK_OPTIONS)

    def save(file: IO[bytes]) -> None:
        file.write(stamp)
        parser.save(file)

    write_file(path, save)
    return parser


def parse(text: str, source: str = "<string>") -> Program:
    """The program ``text`` spells; ``source`` names it in locations and errors."""
    if not text.endswith("\n"):
        text += "\n"
    try:
        tree = _lark().parse(text)
    except (UnexpectedToken, UnexpectedCharacters) as error:  # LALR raises no other kind
        raise _syntax_error(error, text, source) from None
    return _Assembler(source).program(tree)


# --- syntax errors ----------------------------------------------------------------------------


def _quote(text: str) -> str:
    if len(text) > _QUOTE_LIMIT:
        text = text[: _QUOTE_LIMIT - 3] + "..."
    return repr(text) if ("'" in text or not text.isprintable()) else f"'{text}'"


def _word_at(text: str, pos: int) -> str:
    """The offending text: from ``pos`` to the next space, comma or bracket."""
    match = _WORD.match(text, pos)
    return match.group(0) if match else text[pos : pos + 1]


def _describe(terminal: str) -> str:
    if terminal in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[terminal]
    pattern = _lark().get_terminal(terminal).pattern
    return f"'{pattern.value}'" if isinstance(pattern, PatternStr) else terminal


def _expected(terminals: set[str]) -> str:
    return _one_of({_describe(t) for t in terminals})


def _one_of(described: set[str]) -> str:
    names = sorted(described)
    if len(names) == 1:
        return f"expected {names[0]}"
    return "expected one of: " + ", ".join(names)


def _syntax_error(
    error: UnexpectedToken | UnexpectedCharacters, text: str, source: str
) -> ProgramSyntaxError:
    if isinstance(error, UnexpectedToken):
        token = error.token
        if token.type == "$END":
            found = "end of file"
        elif token.type == "_NL":
            found = "end of line"
        else:
            found = _quote(_word_at(text, token.start_pos))
        line, column = token.line, token.column
        expected = error.expected
    else:
        found = _quote(_word_at(text, error.pos_in_stream))
        line, column = error.line, error.column
        expected = error.allowed or set()
    # The contextual lexer's sets merge the lookaheads of LALR states that share a lexer (after
    # a hex blob: end of line or 'entries='); the parser at the point of failure knows exactly.
    parser = getattr(error, "interactive_parser", None)
    if parser is not None:
        expected = parser.accepts()
    return ProgramSyntaxError(
        f"unexpected {found}; {_expected(set(expected))}",
        where=str(SourceLocation(source, line, column)),
    )


# --- from tree to program ---------------------------------------------------------------------


class _Assembler:
    """Builds a ``Program`` from the parse tree of one text."""

    def __init__(self, source: str) -> None:
        self.source = source

    def loc(self, token: Token, offset: int = 0) -> SourceLocation:
        return SourceLocation(self.source, token.line, token.column + offset)

    def syntax(self, token: Token, what: str, fix: str | None = None, offset: int = 0) -> NoReturn:
        raise ProgramSyntaxError(what, where=str(self.loc(token, offset)), fix=fix)

    def program(self, tree: Tree) -> Program:
        version, machine, *directives, text = tree.children
        self.version(version)
        program = Program(machine=self.machine(machine), source=self.source)
        if directives and directives[0].data == "origin":
            program.origin = self.origin(directives.pop(0))
        for directive in directives:
            getattr(self, directive.data)(program, directive)
        program.text = [self.instruction(i) for i in text.children[1:]]
        return program

    # --- header -------------------------------------------------------------------------------

    def version(self, tree: Tree) -> None:
        token = tree.children[1]
        if int(token) != FORMAT_VERSION:
            self.syntax(
                token,
                f"unsupported format version {int(token)}",
                f"this eiec reads .eie {FORMAT_VERSION}",
            )

    def machine(self, tree: Tree) -> Machine:
        keyword, *values = tree.children
        required, keys = values[: len(Machine.REQUIRED)], values[len(Machine.REQUIRED) :]
        fields: dict[str, float | int] = {
            name: float(value) if name in Machine.REALS else int(value)
            for name, value in zip(Machine.REQUIRED, required, strict=True)
        }
        allowed = Machine.FIELDS[len(Machine.REQUIRED) :]
        for key in keys:
            token, value = key.children
            name = str(token)[:-1]
            if name not in allowed:
                found = str(token) + (str(value) if value.start_pos == token.end_pos else "")
                expected = {f"'{k}='" for k in allowed} | {"end of line"}
                self.syntax(token, f"unexpected {_quote(found)}; {_one_of(expected)}")
            allowed = allowed[allowed.index(name) + 1 :]
            if name in Machine.REALS:
                fields[name] = float(value)
            elif re.fullmatch("-?[0-9]+", str(value)):
                fields[name] = int(value)
            else:
                self.syntax(value, f"{name}={value} is not an integer")
        machine = Machine(**fields)
        check_machine(machine, str(self.loc(keyword)))
        return machine

    def origin(self, tree: Tree) -> Origin:
        _, model, options, *weights = tree.children
        for key, token in zip(("model", "weights", "compressed"), (model, *weights), strict=False):
            if not re.fullmatch("[0-9a-f]{64}", str(token)):
                self.syntax(token, f"{key}={token} is not a SHA-256 digest (64 hex digits)")
        return Origin(str(model), json.loads(str(options)), *(str(w) for w in weights))

    # --- data sections ------------------------------------------------------------------------

    def declare(self, kind: str, table: dict, item: Buffer | Layer | Table, token: Token) -> None:
        first = table.get(item.name)
        if first is not None:
            raise VerificationError(
                f"duplicate {kind} '{item.name}' (first declared at {first.loc})",
                where=str(self.loc(token)),
            )
        table[item.name] = item

    def words(self, tree: Tree) -> np.ndarray:
        """An ``int_list`` of 16-bit words."""
        for token in tree.children:
            if not WORD_MIN <= int(token) <= WORD_MAX:
                self.syntax(token, f"{int(token)} is not a 16-bit word ({WORD_MIN}..{WORD_MAX})")
        return np.array([int(t) for t in tree.children], dtype=np.int16)

    def blob(self, token: Token, what: str, decode: Callable[[str], _Decoded]) -> _Decoded:
        try:
            return decode(str(token))
        except hexblob.BlobError as error:
            self.syntax(token, f"bad {what} blob: {error}", offset=error.offset)

    def buffer(self, program: Program, tree: Tree) -> None:
        keyword, name, rows, cols, pitch, frac, init = tree.children
        words = None
        if init is not None:
            decode = functools.partial(hexblob.decode_words, digits=WORD_BITS // 4, signed=True)
            words = self.blob(init, "init", decode).astype(np.int16)
        buffer = Buffer(
            name=str(name),
            rows=int(rows),
            cols=int(cols),
            pitch=int(pitch),
            frac=int(frac),
            init=words,
            loc=self.loc(keyword),
        )
        self.declare("buffer", program.buffers, buffer, keyword)

    def port(self, program: Program, tree: Tree) -> None:
        keyword, name, buffer, shape, axis = tree.children
        port = Port(
            name=str(name),
            buffer=str(buffer),
            shape=tuple(int(d) for d in shape.children),
            batch_axis=None if axis.type == "NONE" else int(axis),
            loc=self.loc(keyword),
        )
        (program.inputs if keyword.type == "INPUT" else program.outputs).append(port)

    def table(self, program: Program, tree: Tree) -> None:
        keyword, name, fn, lo, step_log2, frac, values = tree.children
        table = Table(
            name=str(name),
            fn=str(fn),
            lo=float(lo),
            step_log2=int(step_log2),
            frac=int(frac),
            values=self.words(values),
            loc=self.loc(keyword),
        )
        self.declare("table", program.tables, table, keyword)

    def layer(self, program: Program, tree: Tree) -> None:
        keyword, name, rows, cols, cuts, codebook, *pes = tree.children
        name, rows, cols = str(name), int(rows), int(cols)
        where = str(self.loc(keyword))
        check_layer_shape(name, rows, cols, where)
        chunks = None if cuts is None else tuple(int(token) for token in cuts.children)
        check_pe_count(name, len(pes), program.machine.pes, where)
        book_keyword, frac, values = codebook.children
        book = Codebook(values=self.words(values), frac=int(frac), loc=self.loc(book_keyword))
        digits = stored_ptr_bits(program.machine, chunks is not None) // 4
        decode_ptr = functools.partial(hexblob.decode_words, digits=digits, items="pointers")
        ptrs, vs, zs, locs = [], [], [], []
        for expected, pe in enumerate(pes):
            pe_keyword, index, ptr_blob, entries_blob = pe.children
            if int(index) != expected:
                self.syntax(
                    index,
                    f"layer {name}: .pe {int(index)} where .pe {expected} was expected",
                    "a layer lists its PEs in order from .pe 0",
                )
            ptr = self.blob(ptr_blob, "ptr", decode_ptr)
            v, z = self.blob(entries_blob, "entries", hexblob.decode_entries)
            pe_where = str(self.loc(pe_keyword))
            if ptr.size != cols + 1:
                raise VerificationError(
                    f"layer {name}, PE {expected}: {ptr.size} pointers, expected cols + 1 = "
                    f"{cols + 1}",
                    where=pe_where,
                )
            if ptr[-1] != v.size:
                problem = (
                    "pointers past the data"
                    if ptr[-1] > v.size
                    else "entries after the last pointer"
                )
                raise VerificationError(
                    f"layer {name}, PE {expected}: {problem}: ptr[{cols}] = {int(ptr[-1])}, the "
                    f"PE stores {v.size} entries",
                    where=pe_where,
                )
            ptrs.append(ptr)
            vs.append(v)
            zs.append(z)
            locs.append(self.loc(pe_keyword))
        layer = Layer(
            name=name,
            rows=rows,
            cols=cols,
            codebook=book,
            ptr=np.stack(ptrs),
            v=np.concatenate(vs),
            z=np.concatenate(zs),
            chunks=chunks,
            loc=self.loc(keyword),
            pe_locs=tuple(locs),
        )
        self.declare("layer", program.layers, layer, keyword)

    # --- instructions -------------------------------------------------------------------------

    def instruction(self, tree: Tree) -> Instruction:
        mnemonic, *operands = tree.children
        cls = INSTRUCTIONS.get(str(mnemonic))
        if cls is None:
            import difflib  # lazy: only for an unknown mnemonic's suggestion

            close = difflib.get_close_matches(str(mnemonic), INSTRUCTIONS, n=1)
            known = "known: " + ", ".join(INSTRUCTIONS)
            self.syntax(
                mnemonic,
                f"unknown instruction {_quote(str(mnemonic))}",
                f"did you mean '{close[0]}'? {known}" if close else known,
            )
        fields: dict[str, object] = {}
        position = 0
        for name, kind in cls.OPERANDS:
            if kind == SOURCES:
                if position >= len(operands):
                    self.missing(mnemonic, cls, position)
                fields[name] = tuple(
                    self.operand(cls, position + i, kind, operand)
                    for i, operand in enumerate(operands[position:])
                )
                position = len(operands)
                continue
            if position >= len(operands):
                self.missing(mnemonic, cls, position)
            fields[name] = self.operand(cls, position, kind, operands[position])
            position += 1
        if position < len(operands):
            extra = operands[position]
            self.syntax(
                _first_token(extra),
                f"{cls.MNEMONIC} takes {len(cls.OPERANDS)} operand"
                f"{'s' if len(cls.OPERANDS) != 1 else ''}, got {len(operands)}",
                f"syntax: {_signature(cls)}",
            )
        return cls(**fields, loc=self.loc(mnemonic))

    def missing(self, mnemonic: Token, cls: type[Instruction], position: int) -> NoReturn:
        name, kind = cls.OPERANDS[position]
        self.syntax(
            mnemonic,
            f"{cls.MNEMONIC}: operand {position + 1} ({name}, {_KIND_NAMES[kind]}) is missing",
            f"syntax: {_signature(cls)}",
        )

    def operand(
        self,
        cls: type[Instruction],
        position: int,
        kind: str,
        operand: Token | Tree,
    ) -> object:
        value: object
        if isinstance(operand, Token):  # ONE
            value = One()
        elif operand.data == "name":
            value = str(operand.children[0])
        else:
            buffer, row = operand.children
            value = View(str(buffer), int(row))
        if kind == CHUNK:
            if isinstance(value, View) and value.row is not None:
                return Chunk(value.buffer, value.row)
        elif kind in (LAYER, TABLE):
            if isinstance(value, str):
                return value
        elif kind == VIEW:
            if isinstance(value, str):
                return View(value)
            if isinstance(value, View):
                return value
        elif kind == SOURCES:
            return View(value) if isinstance(value, str) else value
        name = cls.OPERANDS[min(position, len(cls.OPERANDS) - 1)][0]
        self.syntax(
            _first_token(operand),
            f"{cls.MNEMONIC}: operand {position + 1} ({name}) must be {_KIND_NAMES[kind]}, "
            f"not {_quote(str(value))}",
            f"syntax: {_signature(cls)}",
        )


def _signature(cls: type[Instruction]) -> str:
    """``ew-add dst, a, b``: the mnemonic and operand names, for error messages."""
    return " ".join([cls.MNEMONIC, ", ".join(name for name, _ in cls.OPERANDS)]).strip()


def _first_token(operand: Token | Tree) -> Token:
    return operand if isinstance(operand, Token) else operand.children[0]
