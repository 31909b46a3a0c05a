"""MMI reader, on files written in the layout of FORMATS.md 5.4's minimal fixture: an index CSV
and session folders holding a short 720x576 .avi (24 frames/s) and its ``-oao_aucs.xml``. MMI
itself is not on this machine. Frame ``i`` of every fixture video is filled with grey level
``20 * i``, so a frame PNG tells which frame it is."""

import json
from pathlib import Path

import numpy as np
import pytest

from openfer.data import load_dataset
from openfer.data.mmi import apex_frames, frame_name
from openfer.data.mmi_aus import apex_frame, read_apex_spans
from openfer.errors import DataFormatError, OpenferError
from openfer.labels import Emotion

cv2 = pytest.importorskip("cv2")

AUS_XML = """<?xml version="1.0" encoding="utf-8"?>
<ActionUnits>
  <ActionUnit Number="12"><Marker Frame="3" /><Marker Frame="6" /></ActionUnit>
</ActionUnits>
"""


def _video(path: Path, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24, (720, 576))
    for i in range(count):
        writer.write(np.full((576, 720, 3), 20 * i, np.uint8))
    writer.release()
    (path.parent / (path.stem + "-oao_aucs.xml")).write_text(AUS_XML)


def _frame_number(path: Path) -> int:
    return round(float(cv2.imread(str(path)).mean()) / 20)


@pytest.fixture
def mmi(tmp_path):
    """Three subjects, four sessions: one per expression class used, one contempt session."""
    sessions = [("100", "1", "happy", 9, ""), ("101", "1", "surprise", 7, "5"),
                ("200", "2", "anger", 9, ""), ("300", "3", "sadness", 9, ""),
                ("301", "3", "contempt", 9, "")]
    rows = ["session,video,label,subject,apex"]
    for session, subject, label, count, apex in sessions:
        _video(tmp_path / "Sessions" / session / f"S{subject}{session}.avi", count)
        rows.append(f"{session},Sessions/{session}/S{subject}{session}.avi,{label},{subject},"
                    f"{apex}")
    (tmp_path / "index.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_apex_frames_are_centred_on_the_middle_or_the_given_apex():
    assert apex_frames(9, 3) == [3, 4, 5]            # middle of 0..8 is 4
    assert apex_frames(10, 3) == [3, 4, 5]           # (10 - 1) // 2 = 4
    assert apex_frames(7, 3, apex=6) == [4, 5, 6]    # kept inside the video
    assert apex_frames(7, 3, apex=0) == [1, 2, 3]    # frame 0 is the neutral onset
    with pytest.raises(ValueError, match="cannot give"):
        apex_frames(3, 3)
    with pytest.raises(ValueError, match="outside"):
        apex_frames(9, 3, apex=9)
    assert frame_name("1", "100", 30) == "S001_100_030.png"    # FMPN's MMI names


def test_each_sequence_gives_its_apex_frames_with_its_label(mmi):
    data = load_dataset("mmi", mmi, image_size=(48, 48), channels=1)
    assert data.classes == (Emotion.ANGER, Emotion.DISGUST, Emotion.FEAR, Emotion.HAPPINESS,
                            Emotion.SADNESS, Emotion.SURPRISE)
    by_name = {Path(s).name: data.classes[y] for s, y in zip(data.sources, data.labels)}
    assert by_name == {
        "S001_100_003.png": Emotion.HAPPINESS, "S001_100_004.png": Emotion.HAPPINESS,
        "S001_100_005.png": Emotion.HAPPINESS,
        "S001_101_004.png": Emotion.SURPRISE, "S001_101_005.png": Emotion.SURPRISE,
        "S001_101_006.png": Emotion.SURPRISE,                       # apex 5 given in the index
        "S002_200_003.png": Emotion.ANGER, "S002_200_004.png": Emotion.ANGER,
        "S002_200_005.png": Emotion.ANGER,
        "S003_300_003.png": Emotion.SADNESS, "S003_300_004.png": Emotion.SADNESS,
        "S003_300_005.png": Emotion.SADNESS}
    assert data.dropped["sequences of other classes"] == 1          # contempt
    for source in data.sources:                                     # the frames named
        assert _frame_number(Path(source)) == int(Path(source).stem.split("_")[2])
    assert data.subjects[:3] == ["1", "1", "1"]
    assert {_frame_number(Path(r)) for r in data.reference_paths} == {0}   # the onset
    image, label = data[0]
    assert image.shape == (1, 48, 48)


def test_neutral_adds_the_first_frame_of_each_sequence(mmi):
    data = load_dataset("mmi", mmi, neutral=True, frames=1)
    assert data.classes[0] is Emotion.NEUTRAL and len(data.classes) == 7
    names = {Path(s).name: data.classes[y] for s, y in zip(data.sources, data.labels)}
    assert names["S002_200_000.png"] is Emotion.NEUTRAL
    assert names["S002_200_004.png"] is Emotion.ANGER
    assert len(data) == 8                                           # 4 sequences x (1 + 1)


def test_frames_are_decoded_once_and_counts_kept(mmi, monkeypatch):
    load_dataset("mmi", mmi)
    counts = json.loads((mmi / "frames" / "frame_counts.json").read_text())
    assert sorted(v["count"] for v in counts.values()) == [7, 9, 9, 9]   # contempt not opened
    import openfer.data.mmi as reader

    def no_decoding(*_):
        raise AssertionError("a cached video was decoded again")
    monkeypatch.setattr(reader, "_video_frames", no_decoding)
    again = load_dataset("mmi", mmi / "index.csv", frames_dir=mmi / "frames")
    assert len(again) == 12


def test_subject_independent_folds(mmi):
    seen = []
    for fold in range(3):
        test = load_dataset("mmi", mmi, "test", fold=fold, folds=3)
        train = load_dataset("mmi", mmi, "train", fold=fold, folds=3)
        assert not set(test.subjects) & set(train.subjects)
        assert len(test) + len(train) == 12
        seen += test.sources
    assert sorted(seen) == sorted(load_dataset("mmi", mmi).sources)


def test_fmpn_fold_lists_apply_to_the_frame_names(mmi, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    tests = {0: ["S001_100_003.png", "S001_100_004.png", "S001_100_005.png",
                 "S001_101_004.png", "S001_101_005.png", "S001_101_006.png"],
             1: ["S002_200_003.png", "S002_200_004.png", "S002_200_005.png",
                 "S003_300_003.png", "S003_300_004.png", "S003_300_005.png"]}
    for fold, names in tests.items():
        (lists / f"test_ids_{fold}.csv").write_text("\n".join(names) + "\n")
    test = load_dataset("mmi", mmi, "test", fold=1, folds=2, fold_lists=lists)
    assert sorted(Path(s).name for s in test.sources) == tests[1]


def test_a_short_or_broken_video_is_skipped_and_reported(mmi):
    _video(mmi / "Sessions" / "400" / "S4400.avi", 3)               # too short for 1 + 3
    (mmi / "Sessions" / "401").mkdir()
    (mmi / "Sessions" / "401" / "S4401.avi").write_bytes(b"RIFF\0\0\0\0AVI not a video")
    with open(mmi / "index.csv", "a") as index:
        index.write("400,Sessions/400/S4400.avi,fear,4,\n401,Sessions/401/S4401.avi,fear,4,\n")
    data = load_dataset("mmi", mmi)
    assert data.dropped["unreadable or too short videos"] == 2
    assert any("S4400.avi" in p and "cannot give" in p for p in data.problems)
    assert any("S4401.avi" in p for p in data.problems)
    assert len(data) == 12


TYPED_AUS_XML = """<?xml version="1.0" encoding="utf-8"?>
<ActionUnits>
  <ActionUnit Number="6">
    <Marker Frame="1" Type="0" /><Marker Frame="2" Type="1" /><Marker Frame="5" Type="2" />
    <Marker Frame="8" Type="3" /><Marker Frame="9" Type="0" />
  </ActionUnit>
  <ActionUnit Number="12">
    <Marker Frame="3" Type="1" /><Marker Frame="6" Type="2" /><Marker Frame="9" Type="3" />
  </ActionUnit>
  <ActionUnit Number="25"><Marker Frame="2" Type="1" /></ActionUnit>
</ActionUnits>
"""


def test_facs_apex_phases_run_from_an_apex_marker_to_the_next_marker(tmp_path):
    """Frames are 1-based in the file, 0-based here; Type 2 starts the apex phase, which ends
    before the next marker (or at the video's end); an untyped file spans first..last marker."""
    typed, untyped = tmp_path / "typed.xml", tmp_path / "untyped.xml"
    typed.write_text(TYPED_AUS_XML)
    untyped.write_text(AUS_XML)
    spans = read_apex_spans(typed)
    assert spans == {"6": [(4, 6)], "12": [(5, 7)], "25": []}   # AU 25 never reaches its apex
    assert apex_frame(spans, 12) == 5                  # frames 5-6: both AUs at their apex
    assert apex_frame({"1": [(2, 3)], "2": [(6, None)]}, 12) == 8   # longest run: 6..11 -> 8
    assert read_apex_spans(untyped) == {"12": [(2, 5)]}
    assert apex_frame({"12": [(2, 5)]}, 12) == 3
    assert apex_frame({"12": [(20, 25)]}, 12) is None  # outside the video: no apex


def test_apex_from_aus_centres_the_frames_on_the_facs_apex(mmi):
    (mmi / "Sessions" / "200" / "S2200-oao_aucs.xml").write_text(TYPED_AUS_XML)
    (mmi / "Sessions" / "300" / "S3300-oao_aucs.xml").unlink()
    data = load_dataset("mmi", mmi, apex_from="aus", frames=1)
    names = sorted(Path(s).name for s in data.sources)
    assert names == ["S001_100_003.png",      # untyped AU 12 at frames 2..5: middle 3
                     "S001_101_005.png",      # the index's apex (5) wins
                     "S002_200_005.png",      # typed file: AUs 6 and 12 both at apex on 5-6
                     "S003_300_004.png"]      # no FACS file: the middle frame, reported
    assert [p for p in data.problems if "S3300" in p and "middle frame" in p]
    assert _frame_number(mmi / "frames" / "S002_200_005.png") == 5
    with pytest.raises(OpenferError, match="apex_from='peak'.*'middle'.*'aus'"):
        load_dataset("mmi", mmi, apex_from="peak")


@pytest.mark.parametrize("xml, message", [
    ("<ActionUnits><ActionUnit Number='4'>", "not well-formed XML"),
    ("<ActionUnits><ActionUnit Number='4'><Marker Frame='x' /></ActionUnit></ActionUnits>",
     "ActionUnit '4' has Frame='x', not a whole number"),
    ("<ActionUnits><ActionUnit Number='4'><Marker Frame='0' Type='2' /></ActionUnit>"
     "</ActionUnits>", "Frame=0; frames are numbered from 1"),
    ("<ActionUnits><ActionUnit Number='4'><Marker Frame='3' Type='apex' /></ActionUnit>"
     "</ActionUnits>", "Type='apex', not a whole number"),
    ('<!DOCTYPE a [<!ENTITY l0 "lollollollol">' + "".join(   # "billion laughs": refused
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
     + ']><ActionUnits><ActionUnit Number="&l9;" /></ActionUnits>', "amplification"),
])
def test_a_broken_facs_file_is_an_error_naming_it(mmi, xml, message):
    (mmi / "Sessions" / "200" / "S2200-oao_aucs.xml").write_text(xml)
    with pytest.raises(DataFormatError, match=message) as error:
        load_dataset("mmi", mmi, apex_from="aus")
    assert "S2200-oao_aucs.xml" in str(error.value)
    assert len(load_dataset("mmi", mmi)) == 12         # not read unless asked for


@pytest.mark.parametrize("row, message", [
    ("500,Sessions/500/x.avi,anger,5,\n", "video .* not found"),
    ("500,Sessions/100/S1100.avi,grumpy,5,\n", "not an emotion name"),
    ("100,Sessions/100/S1100.avi,anger,1,\n", "also on line 2"),
    ("500,Sessions/100/S1100.avi,anger,S_5,\n", "subject 'S_5' must be letters"),
    ("500,Sessions/100/S1100.avi,anger,5,apex\n", "apex 'apex' is not a frame number"),
    ("500,Sessions/100/S1100.avi,anger\n", "expected 5 fields, found 3"),
])
def test_index_errors_name_the_line_and_field(mmi, row, message):
    with open(mmi / "index.csv", "a") as index:
        index.write(row)
    with pytest.raises(DataFormatError, match=message) as error:
        load_dataset("mmi", mmi)
    assert "index.csv, line 7" in str(error.value)


def test_missing_index_or_columns_say_what_is_expected(tmp_path):
    with pytest.raises(OpenferError, match="session,video,label,subject"):
        load_dataset("mmi", tmp_path)
    (tmp_path / "index.csv").write_text("session,video,label\n1,a.avi,happy\n")
    with pytest.raises(DataFormatError, match="no column subject"):
        load_dataset("mmi", tmp_path)


@pytest.mark.slow
def test_fmpn_recipes_train_from_the_videos(tmp_path):
    """FMPN's MMI recipes, as their header says, on session videos: the classes' motion is a
    square whose place encodes the class and which brightens towards the apex; masks are
    computed from each training fold (apex frame minus first frame), 2 folds."""
    pytest.importorskip("lightning")
    from openfer.engine.cross_validation import run_cross_validation

    rng = np.random.default_rng(0)
    rows = ["session,video,label,subject"]
    labels = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
    for subject in range(1, 7):
        for c, label in enumerate(labels):
            session = f"{subject}{c:02d}"
            path = tmp_path / "Sessions" / session / f"S{session}.avi"
            path.parent.mkdir(parents=True)
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24, (96, 96))
            for f in range(9):                       # onset, apex (frame 4), offset
                image = rng.integers(60, 90, (96, 96, 3)).astype(np.uint8)
                row, col = divmod(c, 3)
                image[8 + row * 40:40 + row * 40, 8 + col * 28:32 + col * 28] = \
                    int(75 + 180 * (1 - abs(f - 4) / 4))
                writer.write(image)
            writer.release()
            rows.append(f"{session},Sessions/{session}/S{session}.avi,{label},{subject}")
    (tmp_path / "index.csv").write_text("\n".join(rows) + "\n")
    small = ["data.dataset=mmi", f"data.root={tmp_path / 'index.csv'}", "fmpn.masks=computed",
             "model.args.classifier=fernet_s", "model.args.generator_width=8",
             "data.image_size=48", "data.batch_size=8", "augment.five_crop=false",
             "augment.hflip=0",                # a flip would move a class's square onto another's
             "optimizer.lr=0.003", "trainer.progress_bar=false"]
    result = run_cross_validation(["fmpn_mmi_stage1", "fmpn_mmi"],
                                  small + ["trainer.max_epochs=8"],
                                  tmp_path / "cv", folds=2)
    assert sum(r["n"] for r in result["per_fold"]) == 6 * 6 * 3     # every apex frame once
    assert result["accuracy"]["mean"] > 0.3, result                 # chance 1/6
    assert (tmp_path / "cv" / "fold_0" / "1_fmpn_mmi" / "masks" / "0.png").is_file()
