"""MMI's FACS files: the apex of a sequence from its action units' temporal phases.

Each MMI video has its FACS coding beside it, ``<video name>-oao_aucs.xml`` (FORMATS.md 5.1):
``ActionUnit`` elements (attribute ``Number``), each holding ``Marker`` elements with a ``Frame``
attribute. "oao" is onset-apex-offset: each marker starts a temporal phase of its action unit,
which lasts until its next marker. The public MMI extraction scripts read the frames as 1-based
and a marker's ``Type`` as its phase: 0 neutral, 1 onset, 2 apex, 3 offset (FORMATS.md leaves
``Type`` unconfirmed; those scripts are the source). So an action unit is at its apex from its
``Type="2"`` marker to the frame before its next marker (to the video's end when none follows).
A file whose markers carry no ``Type`` gives each action unit the span from its first to its last
marker instead.

The sequence's apex (:func:`apex_frame`) is then the middle of the longest run of frames in
which the most action units are at their apex: a choice of ours (papers pick apex frames by
hand, or take the middle of the video, FORMATS.md 5.2), used by the MMI reader's
``apex_from="aus"``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataFormatError

SUFFIX = "-oao_aucs.xml"
APEX = 2


def aus_path(video: Path) -> Path:
    """``S001-100.avi`` -> ``S001-100-oao_aucs.xml`` beside it (the public scripts' rule)."""
    return video.with_name(video.stem + SUFFIX)


def _integer(path: Path, unit: str, marker, name: str, required: bool) -> int | None:
    value = marker.get(name)
    if value is None and not required:
        return None
    if value is None or not value.strip().isdigit():
        raise DataFormatError(path, f"a Marker of ActionUnit {unit[:20]!r} has {name}="
                              f"{(value or '')[:20]!r}, not a whole number", field=name,
                              hint="MMI's FACS files number frames from 1")
    return int(value)


def read_apex_spans(path: str | Path) -> dict[str, list[tuple[int, int | None]]]:
    """Each action unit's apex spans as 0-based ``(first, last)`` frames (``last`` ``None``:
    to the end of the video), keyed by its ``Number``. Action units without markers, or
    without an apex marker in a typed file, have no spans."""
    import xml.etree.ElementTree as ET

    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DataFormatError(path, f"not well-formed XML ({exc})",
                              line=exc.position[0]) from None
    except (LookupError, ValueError) as exc:       # an encoding expat cannot read
        raise DataFormatError(path, f"cannot be decoded ({exc})",
                              hint="MMI's FACS files are UTF-8 XML") from None
    except OSError as exc:
        raise DataFormatError(path, f"cannot be read ({exc.strerror or exc})") from None
    spans: dict[str, list[tuple[int, int | None]]] = {}
    for unit in root.iter("ActionUnit"):
        number = unit.get("Number", "?")
        markers = []
        for marker in unit.iter("Marker"):
            frame = _integer(path, number, marker, "Frame", True)
            if frame < 1:
                raise DataFormatError(path, f"a Marker of ActionUnit {number[:20]!r} has "
                                      f"Frame={frame}; frames are numbered from 1", field="Frame")
            markers.append((frame - 1, _integer(path, number, marker, "Type", False)))
        markers.sort(key=lambda m: m[0])
        if not markers:
            continue
        if all(kind is None for _, kind in markers):
            found = [(markers[0][0], markers[-1][0])]
        else:
            found = [(frame, markers[i + 1][0] - 1 if i + 1 < len(markers) else None)
                     for i, (frame, kind) in enumerate(markers) if kind == APEX]
        spans.setdefault(number, []).extend(found)
    return spans


def apex_frame(spans: dict[str, list[tuple[int, int | None]]], count: int) -> int | None:
    """The 0-based frame in the middle of the longest run of frames (of ``count``) in which the
    most action units are at their apex; ``None`` when no apex span lies in the video."""
    cover = [0] * count
    for unit_spans in spans.values():
        inside = set()
        for first, last in unit_spans:
            inside.update(range(max(first, 0), min(count - 1 if last is None else last,
                                                   count - 1) + 1))
        for frame in inside:
            cover[frame] += 1
    most = max(cover, default=0)
    if most == 0:
        return None
    best, start = None, None
    for frame, value in enumerate([*cover, -1]):
        if value == most and start is None:
            start = frame
        elif value != most and start is not None:
            if best is None or frame - start > best[1] - best[0] + 1:
                best = (start, frame - 1)
            start = None
    return (best[0] + best[1]) // 2
