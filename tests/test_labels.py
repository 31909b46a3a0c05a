"""Label orders of every data set, and conversions through the canonical taxonomy."""

import pytest

from openfer.labels import (AFFECTNET, AFFECTNET7, AFFWILD2, CKPLUS, CKPLUS_FMPN, EXPW, FER2013,
                            FERG, JAFFE, MMI, RAFDB, SFEW, Emotion, convert, emotions_from_names,
                            parse_emotion)

E = Emotion


def test_fer2013_order_is_angry_disgust_fear_happy_sad_surprise_neutral():
    assert FER2013.emotions == (E.ANGER, E.DISGUST, E.FEAR, E.HAPPINESS, E.SADNESS, E.SURPRISE,
                                E.NEUTRAL)
    assert FER2013.base == 0


def test_rafdb_is_one_based_surprise_first():
    assert RAFDB.base == 1
    assert RAFDB.to_emotion(1) is E.SURPRISE
    assert RAFDB.to_emotion(4) is E.HAPPINESS
    assert RAFDB.to_emotion(7) is E.NEUTRAL
    with pytest.raises(ValueError, match="not a rafdb label"):
        RAFDB.to_emotion(0)


def test_affectnet_has_contempt_and_non_expression_codes():
    assert AFFECTNET.to_emotion(0) is E.NEUTRAL
    assert AFFECTNET.to_emotion(7) is E.CONTEMPT
    for code in (8, 9, 10):
        assert AFFECTNET.to_emotion(code) is None
    assert AFFECTNET.name_of(10) == "No-Face"
    assert AFFECTNET7.to_emotion(7) is None and len(AFFECTNET7) == 7


def test_abaw_order_and_other():
    assert [AFFWILD2.to_emotion(i) for i in range(7)] == [
        E.NEUTRAL, E.ANGER, E.DISGUST, E.FEAR, E.HAPPINESS, E.SADNESS, E.SURPRISE]
    assert AFFWILD2.to_emotion(7) is None


def test_ckplus_codes_and_fmpn_shift():
    assert CKPLUS.to_emotion(2) is E.CONTEMPT and CKPLUS.to_emotion(0) is E.NEUTRAL
    # FMPN stores CK+ codes 1..7 and subtracts one: 0 anger ... 6 surprise.
    assert CKPLUS_FMPN.to_emotion(0) is E.ANGER and CKPLUS_FMPN.to_emotion(6) is E.SURPRISE
    assert convert(CKPLUS.from_emotion(E.HAPPINESS), CKPLUS, CKPLUS_FMPN) == 4


def test_mmi_jaffe_ferg():
    assert len(MMI) == 6 and E.NEUTRAL not in MMI.emotions
    assert JAFFE.name_of(JAFFE.from_emotion("fear")) == "FE"
    assert FERG.name_of(FERG.from_emotion("happy")) == "joy"


def test_expw_is_fer2013s_order_and_sfew_its_folders_alphabetically():
    assert EXPW.emotions == FER2013.emotions and EXPW.name_of(3) == "happy"
    assert SFEW.native_names == ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
    assert SFEW.to_emotion(4) is E.NEUTRAL and SFEW.to_emotion(5) is E.SADNESS


@pytest.mark.parametrize("code, target, expected", [
    (3, AFFECTNET, 1),   # FER2013 Happy -> AffectNet 1 Happiness
    (0, RAFDB, 6),       # FER2013 Angry -> RAF-DB 6 Anger
    (6, AFFWILD2, 0),    # FER2013 Neutral -> ABAW 0 Neutral
    (5, CKPLUS, 7),      # FER2013 Surprise -> CK+ 7 surprise
])
def test_convert_goes_through_emotions_not_positions(code, target, expected):
    assert convert(code, FER2013, target) == expected


def test_convert_refuses_missing_class_and_non_expressions():
    with pytest.raises(ValueError, match="no 'contempt' class"):
        convert(7, AFFECTNET, FER2013)
    with pytest.raises(ValueError, match="not an expression"):
        convert(9, AFFECTNET, FER2013)


@pytest.mark.parametrize("alias, emotion", [
    ("angry", E.ANGER), ("Happy", E.HAPPINESS), ("joy", E.HAPPINESS), ("sad", E.SADNESS),
    ("surprised", E.SURPRISE), ("fearful", E.FEAR), ("disgusted", E.DISGUST),
    (" Neutral ", E.NEUTRAL), ("contempt", E.CONTEMPT), ("AN", E.ANGER)])
def test_aliases(alias, emotion):
    assert parse_emotion(alias) is emotion


def test_unknown_name_lists_accepted_names():
    with pytest.raises(ValueError, match="not an emotion name; use one of anger"):
        parse_emotion("bored")


def test_class_list_refuses_duplicates():
    with pytest.raises(ValueError, match="names 'happiness' twice"):
        emotions_from_names(["happy", "joy"])
