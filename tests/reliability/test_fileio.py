"""``eiec.fileio``: path checks before any work, atomic writes with ordinary permissions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from eiec.errors import PathError
from eiec.fileio import MODEL, InputFile, OutputFile, check_paths, write_atomic


@pytest.fixture
def umask_027() -> Iterator[None]:
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_new_file_gets_the_umask_mode(tmp_path: Path, umask_027: None) -> None:
    write_atomic(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_overwriting_keeps_the_existing_mode(tmp_path: Path, umask_027: None) -> None:
    path = tmp_path / "a.txt"
    path.write_text("old")
    path.chmod(0o644)
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o644


def test_symlinked_output_rewrites_its_target(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("old")
    (tmp_path / "link.txt").symlink_to("real.txt")
    write_atomic(tmp_path / "link.txt", "new")
    assert (tmp_path / "link.txt").is_symlink() and (tmp_path / "real.txt").read_text() == "new"


def _message(inputs: list[InputFile], outputs: list[OutputFile]) -> str:
    with pytest.raises(PathError) as caught:
        check_paths(inputs, outputs)
    return str(caught.value)


def test_an_output_never_is_an_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    os.link(model, tmp_path / "hard.onnx")
    (tmp_path / "sym.onnx").symlink_to("m.onnx")
    inputs = [InputFile("MODEL", str(model), MODEL)]
    for name in ("m.onnx", "hard.onnx", "sym.onnx"):
        out = tmp_path / name
        assert _message(inputs, [OutputFile("--output", str(out))]) == (
            f"{out}: is the same file as the input {model} (MODEL); eiec never overwrites an "
            "input (write the output to another file)"
        )
    assert model.read_bytes() == b"model"
    a, b = OutputFile("-o", str(tmp_path / "p.eie")), OutputFile("--report-json", "p.eie")
    monkeypatch.chdir(tmp_path)
    assert _message([], [a, b]) == (
        f"p.eie: is the same file as the output {tmp_path / 'p.eie'} (-o) (write the output to "
        "another file)"
    )


def test_outputs_must_be_writable_files(tmp_path: Path) -> None:
    def out(path: str | Path) -> str:
        return _message([], [OutputFile("-o", str(path))])

    assert out(tmp_path) == f"{tmp_path}: is a directory (give a file name, e.g. {tmp_path}/out)"
    assert out(tmp_path / "no" / "p.eie") == (
        f"{tmp_path / 'no' / 'p.eie'}: folder {tmp_path / 'no'} does not exist (create it first)"
    )
    assert out("/proc/p.eie") == (
        "/proc/p.eie: cannot write in folder /proc: No such file or directory (choose a folder "
        "you can write to)"
    )
    assert out("/dev/null") == (
        "/dev/null: is not a regular file (a device or pipe would be replaced, not written) "
        "(give the path of a regular file)"
    )


def test_inputs_must_be_files(tmp_path: Path) -> None:
    assert _message([InputFile("MODEL", str(tmp_path), MODEL)], []) == (
        f"{tmp_path}: is a directory, not a file (give the path of an .onnx file)"
    )
    missing = tmp_path / "none.onnx"
    assert _message([InputFile("MODEL", str(missing), MODEL)], []) == (
        f"{missing}: model file not found (give the path of an .onnx file)"
    )


def test_an_output_folder_is_a_folder_or_can_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    plots = ("a.png", "b.png")

    def folder(path: Path) -> list[OutputFile]:
        return [OutputFile("--plot", str(path), inside=plots)]

    assert _message([], folder(tmp_path / "file")) == (
        f"{tmp_path / 'file'}: is not a folder (give the path of a folder; a missing one is made)"
    )
    assert _message([], folder(tmp_path / "file" / "sub")) == (
        f"{tmp_path / 'file' / 'sub'}: {tmp_path / 'file'} is not a folder "
        "(give a path whose existing part is folders)"
    )
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").mkdir()  # a file the folder's output would replace
    assert _message([], folder(tmp_path / "out")) == (
        f"{tmp_path / 'out' / 'a.png'}: is a directory "
        f"(give a file name, e.g. {tmp_path / 'out' / 'a.png'}/out)"
    )
    check_paths([], folder(tmp_path / "new" / "deeper"))  # made later, by the command
    check_paths([], folder(tmp_path))
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out"]


def test_a_failed_write_names_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    import errno

    def full(handle: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(PathError) as caught:
        write_atomic(target, full)
    assert str(caught.value) == (
        f"{target}: cannot write: No space left on device (free some space or write elsewhere)"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    assert target.read_bytes() == b"old"


def test_a_long_name_still_gets_a_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / ("n" * 250)
    write_atomic(target, "x")
    assert target.read_text() == "x"


def test_dash_is_standard_output_for_text_outputs_alone(tmp_path: Path) -> None:
    check_paths([], [OutputFile("-o", "-", text=True)])
    assert _message([], [OutputFile("-o", "-")]) == (
        "-o: '-' (standard output) is for text outputs and this one is binary (give a file "
        "name; ./- is a file named '-')"
    )
    assert _message(
        [], [OutputFile("-o", "-", text=True), OutputFile("--json", "-", text=True)]
    ) == (
        "--json: '-' (standard output) is given for -o too (send at most one output to "
        "standard output)"
    )


def test_stdout_reserved_keeps_stdout_for_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    from eiec.fileio import stdout_reserved

    with stdout_reserved():
        print("the report")
        write_atomic("-", "the program\n")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("the program\n", "the report\n")


def test_files_an_output_folder_will_hold_are_checked_against_the_inputs(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "a.png").symlink_to(model)
    inputs = [InputFile("MODEL", str(model), MODEL)]
    assert _message(inputs, [OutputFile("--plot", str(plots), inside=("a.png", "b.png"))]) == (
        f"{plots / 'a.png'}: is the same file as the input {model} (MODEL); eiec never "
        "overwrites an input (write the output to another file)"
    )


def test_a_fifo_input_is_refused_without_blocking(tmp_path: Path) -> None:
    from eiec.fileio import read_regular

    fifo = tmp_path / "f.onnx"
    os.mkfifo(fifo)
    assert _message([InputFile("MODEL", str(fifo), MODEL)], []) == (
        f"{fifo}: is not a regular file but a pipe (FIFO), which eiec does not read (save the "
        "data to a file and give its path)"
    )
    with pytest.raises(OSError, match="not a regular file but a pipe"):
        read_regular(fifo)
