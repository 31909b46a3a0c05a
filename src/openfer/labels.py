"""Emotion taxonomy and the native label order of every data set openfer reads.

Four different seven-class orders are in common use (FER2013, RAF-DB, AffectNet, Aff-Wild2), and
mixing them up is the most reported bug in FER code. openfer therefore never maps labels by
position: each data set's order is written down here as an explicit :class:`LabelSet` (sources:
../shared/docs/FORMATS.md section 0 and METHODS.md), and every conversion goes through the
canonical :class:`Emotion`.

    >>> FER2013.to_emotion(3)
    <Emotion.HAPPINESS: 'happiness'>
    >>> RAFDB.from_emotion(Emotion.HAPPINESS)   # RAF-DB is 1-based: 4 Happiness
    4
    >>> convert(3, FER2013, AFFECTNET)         # FER2013 Happy -> AffectNet 1 Happiness
    1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Mapping, Sequence


class Emotion(str, Enum):
    """The canonical expression categories: Ekman's six basic emotions, neutral and contempt,
    and the 11 compound expressions of RAF-DB's compound subset (Du, Tao & Martinez's compound
    categories as RAF-DB labels them: "happily surprised" is happiness with surprise)."""

    NEUTRAL = "neutral"
    HAPPINESS = "happiness"
    SADNESS = "sadness"
    SURPRISE = "surprise"
    FEAR = "fear"
    DISGUST = "disgust"
    ANGER = "anger"
    CONTEMPT = "contempt"
    HAPPILY_SURPRISED = "happily surprised"
    HAPPILY_DISGUSTED = "happily disgusted"
    SADLY_FEARFUL = "sadly fearful"
    SADLY_ANGRY = "sadly angry"
    SADLY_SURPRISED = "sadly surprised"
    SADLY_DISGUSTED = "sadly disgusted"
    FEARFULLY_ANGRY = "fearfully angry"
    FEARFULLY_SURPRISED = "fearfully surprised"
    ANGRILY_SURPRISED = "angrily surprised"
    ANGRILY_DISGUSTED = "angrily disgusted"
    DISGUSTEDLY_SURPRISED = "disgustedly surprised"

    def __str__(self) -> str:
        return self.value


#: Names used by data sets and tools for the canonical emotions (lower case, no punctuation).
ALIASES: dict[str, Emotion] = {
    "neutral": Emotion.NEUTRAL, "neutrality": Emotion.NEUTRAL, "ne": Emotion.NEUTRAL,
    "calm": Emotion.NEUTRAL,
    "happiness": Emotion.HAPPINESS, "happy": Emotion.HAPPINESS, "joy": Emotion.HAPPINESS,
    "ha": Emotion.HAPPINESS, "hap": Emotion.HAPPINESS,
    "sadness": Emotion.SADNESS, "sad": Emotion.SADNESS, "sa": Emotion.SADNESS,
    "surprise": Emotion.SURPRISE, "surprised": Emotion.SURPRISE, "su": Emotion.SURPRISE,
    "sur": Emotion.SURPRISE,
    "fear": Emotion.FEAR, "fearful": Emotion.FEAR, "afraid": Emotion.FEAR, "scared": Emotion.FEAR,
    "fe": Emotion.FEAR, "fea": Emotion.FEAR,
    "disgust": Emotion.DISGUST, "disgusted": Emotion.DISGUST, "di": Emotion.DISGUST,
    "dis": Emotion.DISGUST,
    "anger": Emotion.ANGER, "angry": Emotion.ANGER, "an": Emotion.ANGER, "ang": Emotion.ANGER,
    "contempt": Emotion.CONTEMPT, "contemptuous": Emotion.CONTEMPT,
}
# compound expressions: "happily surprised", "happily_surprised", "Happily-Surprised"
ALIASES.update({e.value: e for e in list(Emotion)[8:]})
ALIASES.update({e.value.replace(" ", ""): e for e in list(Emotion)[8:]})


def parse_emotion(name: str | Emotion) -> Emotion:
    """Return the canonical emotion for a name or alias (case and surrounding space ignored).

    Raises ``ValueError`` naming the accepted names when ``name`` is not an emotion.
    """
    if isinstance(name, Emotion):
        return name
    key = " ".join(str(name).strip().lower().replace("-", "").replace("_", "").split())
    try:
        return ALIASES.get(key) or ALIASES[key.replace(" ", "")]
    except KeyError:
        accepted = ", ".join(sorted({e.value for e in Emotion}))
        raise ValueError(
            f"{name!r} is not an emotion name; use one of {accepted} "
            f"(or a common alias such as angry, happy, sad, joy)") from None


@dataclass(frozen=True)
class LabelSet:
    """A data set's native label codes, in the owner's order and with the owner's base.

    ``emotions[i]`` is the emotion of code ``base + i``. ``other`` lists codes in the same label
    column that are not expressions (AffectNet 8 None, 9 Uncertain, 10 No-Face; ABAW 7 Other):
    readers drop and count them, and :meth:`to_emotion` returns ``None`` for them.
    """

    name: str
    emotions: tuple[Emotion, ...]
    base: int = 0
    native_names: tuple[str, ...] = ()
    other: Mapping[int, str] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if len(set(self.emotions)) != len(self.emotions):
            raise ValueError(f"label set {self.name} repeats an emotion")
        if self.native_names and len(self.native_names) != len(self.emotions):
            raise ValueError(f"label set {self.name}: native_names and emotions differ in length")

    @property
    def codes(self) -> range:
        """The expression codes, e.g. ``range(1, 8)`` for RAF-DB."""
        return range(self.base, self.base + len(self.emotions))

    def __len__(self) -> int:
        return len(self.emotions)

    def to_emotion(self, code: int) -> Emotion | None:
        """The emotion of a native code, or ``None`` for a non-expression code in ``other``."""
        index = int(code) - self.base
        if 0 <= index < len(self.emotions):
            return self.emotions[index]
        if int(code) in self.other:
            return None
        raise ValueError(f"{code} is not a {self.name} label code; expected one of "
                         f"{self.base}..{self.base + len(self.emotions) - 1}"
                         + (f" or {sorted(self.other)}" if self.other else ""))

    def from_emotion(self, emotion: Emotion | str) -> int:
        """The native code of an emotion; ``ValueError`` if this data set does not have it."""
        emotion = parse_emotion(emotion)
        try:
            return self.base + self.emotions.index(emotion)
        except ValueError:
            raise ValueError(f"{self.name} has no {emotion.value!r} class; its classes are "
                             f"{', '.join(e.value for e in self.emotions)}") from None

    def index_of(self, emotion: Emotion | str) -> int:
        """Zero-based class index (``code - base``) of an emotion."""
        return self.from_emotion(emotion) - self.base

    def name_of(self, code: int) -> str:
        """The owner's own name for a code (e.g. ``'Angry'`` for FER2013 0)."""
        index = int(code) - self.base
        if self.native_names and 0 <= index < len(self.native_names):
            return self.native_names[index]
        if int(code) in self.other:
            return self.other[int(code)]
        emotion = self.to_emotion(code)
        return emotion.value if emotion else str(code)


def _E(*names: str) -> tuple[Emotion, ...]:
    return tuple(parse_emotion(n) for n in names)


FER2013 = LabelSet(
    "fer2013", _E("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"),
    native_names=("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"),
    source="FER2013 fer2013.csv 'emotion' column (Goodfellow et al. 2013)")

#: ExpW uses the FER2013 order.
EXPW = LabelSet("expw", FER2013.emotions,
                native_names=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
                source="ExpW label.lst")

RAFDB = LabelSet(
    "rafdb", _E("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"), base=1,
    native_names=("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral"),
    source="RAF-DB basic EmoLabel/list_patition_label.txt (1-based)")

_COMPOUND = ("Happily Surprised", "Happily Disgusted", "Sadly Fearful", "Sadly Angry",
             "Sadly Surprised", "Sadly Disgusted", "Fearfully Angry", "Fearfully Surprised",
             "Angrily Surprised", "Angrily Disgusted", "Disgustedly Surprised")
RAFDB_COMPOUND = LabelSet(
    "rafdb_compound", _E(*_COMPOUND), base=1, native_names=_COMPOUND,
    source="RAF-DB compound EmoLabel/list_patition_label.txt (1-based, 11 classes)")

AFFECTNET = LabelSet(
    "affectnet",
    _E("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt"),
    native_names=("Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger",
                  "Contempt"),
    other={8: "None", 9: "Uncertain", 10: "No-Face"},
    source="AffectNet training.csv / validation.csv 'expression' column")

#: AffectNet without contempt: the 7-class protocol (Emotion-GCN, DACL).
AFFECTNET7 = LabelSet("affectnet7", AFFECTNET.emotions[:7], native_names=AFFECTNET.native_names[:7],
                      other={7: "Contempt", 8: "None", 9: "Uncertain", 10: "No-Face"},
                      source="AffectNet, contempt (7) dropped")

AFFWILD2 = LabelSet(
    "affwild2", _E("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise"),
    native_names=("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"),
    other={7: "Other"},
    source="ABAW EXPR_Set / EXPR_Classification_Challenge txt files (7 = Other from ABAW 3 on)")

CKPLUS = LabelSet(
    "ckplus",
    _E("neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"),
    native_names=("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness",
                  "surprise"),
    source="CK+ Emotion/*_emotion.txt codes (ReadMeCohnKanadeDatabase_website.txt)")

#: FMPN's CK+ classes: ``emotion_labels.pkl`` codes 1..7 minus 1 (CK+ without neutral).
CKPLUS_FMPN = LabelSet(
    "ckplus_fmpn", _E("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"),
    native_names=("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"),
    source="FMPN-FER datasets/CKPlus/emotion_labels.pkl, code - 1")

MMI = LabelSet(
    "mmi", _E("anger", "disgust", "fear", "happiness", "sadness", "surprise"),
    native_names=("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"),
    source="FMPN-FER datasets/MMI/emotion_labels.pkl (0..5)")

#: JAFFE codes appear in file names (``KA.AN1.39.tiff``); indices follow this listed order.
JAFFE = LabelSet(
    "jaffe", _E("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"),
    native_names=("AN", "DI", "FE", "HA", "NE", "SA", "SU"),
    source="JAFFE file-name codes, alphabetical")

#: FERG-DB names its folders; indices are alphabetical, as public loaders use them.
FERG = LabelSet(
    "ferg", _E("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"),
    native_names=("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"),
    source="FERG-DB folder names, alphabetical")

#: SFEW 2.0 names its folders (``Train_Aligned_Faces/Angry/``); indices are alphabetical, as
#: public loaders use them.
SFEW = LabelSet(
    "sfew", _E("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"),
    native_names=("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"),
    source="SFEW 2.0 folder names, alphabetical")

FERPLUS = LabelSet(
    "ferplus",
    _E("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"),
    native_names=("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                  "contempt"),
    other={8: "unknown", 9: "NF"},
    source="FER+ fer2013new.csv vote columns")

#: Node order of Emotion-GCN's label graph (AffectNet's 7 classes; valence and arousal follow).
EMOTION_GCN_NODES = AFFECTNET7

LABEL_SETS: dict[str, LabelSet] = {ls.name: ls for ls in (
    FER2013, EXPW, RAFDB, RAFDB_COMPOUND, AFFECTNET, AFFECTNET7, AFFWILD2, CKPLUS, CKPLUS_FMPN,
    MMI, JAFFE, FERG, SFEW, FERPLUS)}


def get_label_set(name: str) -> LabelSet:
    try:
        return LABEL_SETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}") from None


def convert(code: int, source: LabelSet, target: LabelSet) -> int:
    """Convert a native code of ``source`` into the code of the same emotion in ``target``."""
    emotion = source.to_emotion(code)
    if emotion is None:
        raise ValueError(f"{source.name} code {code} ({source.name_of(code)}) is not an expression")
    return target.from_emotion(emotion)


def emotions_from_names(names: Iterable[str | Emotion]) -> tuple[Emotion, ...]:
    """Parse a class list such as ``["angry", "happy"]``; duplicates are an error."""
    names = list(names)
    emotions = tuple(parse_emotion(n) for n in names)
    seen: set[Emotion] = set()
    for name, emotion in zip(names, emotions):
        if emotion in seen:
            raise ValueError(f"class list names {emotion.value!r} twice (at {name!r})")
        seen.add(emotion)
    return emotions


def index_mapping(source: Sequence[Emotion], target: Sequence[Emotion]) -> list[int | None]:
    """For each class of ``source`` (index order), its index in ``target``, or ``None``."""
    position = {e: i for i, e in enumerate(target)}
    return [position.get(e) for e in source]
