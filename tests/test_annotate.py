"""Annotated images: every face keeps its box, title and score panel readable — labels cover no
face and no other label where the image leaves room."""

import numpy as np
import pytest

from openfer.annotate import (COMPACT_ROWS, Placements, _overlap, annotate, layout,
                              place_labels)
from openfer.infer import FaceResult, ImageResult

from conftest import SHARED

PHOTO = SHARED / "data" / "photos" / "group6.jpg"


def inside(rect, width, height):
    return rect[0] >= 0 and rect[1] >= 0 and rect[2] <= width and rect[3] <= height


def test_the_group_photo_gets_every_panel_clear_of_every_face_and_label():
    from openfer import Recognizer
    from openfer.data.images import read_image

    if not PHOTO.is_file():
        pytest.skip(f"{PHOTO} not found (../shared is not beside the repository)")
    image = read_image(PHOTO, 3)
    result = Recognizer(detector="mtcnn").predict([image])[0]
    assert len(result.faces) == 6
    canvas = annotate(image, result)
    assert canvas.shape == image.shape and not np.array_equal(canvas, image)
    plan = layout(image.shape, result)
    labels = plan.title_rects + [rect for rect, rows in plan.panel_rects]
    boxes = plan.boxes
    assert all(rows >= COMPACT_ROWS for _, rows in plan.panel_rects)        # every face has a panel
    for i, rect in enumerate(labels):
        assert inside(rect, 1280, 886)
        assert not any(_overlap(rect, box) for box in boxes), rect
        assert not any(_overlap(rect, other) for other in labels[i + 1:]), rect


def test_a_title_with_no_room_above_its_face_goes_below_it():
    title_rects, _ = place_labels([(0, 0, 50, 50)], [(40, 12)], [], 10, 200, 200)
    assert title_rects[0] == (0, 50, 40, 62)


def test_a_panel_shrinks_to_the_top_classes_then_is_left_out_rather_than_cover_a_face():
    # two faces side by side with room for one panel of three rows under them, not of seven
    boxes = [(0, 20, 60, 80), (62, 20, 122, 80)]
    _, panels = place_labels(boxes, [(30, 10), (30, 10)], [(100, 7), (100, 7)], 10, 122, 120)
    assert [rows for _, rows in panels] == [COMPACT_ROWS, 0]
    # the first compact panel sits under its face; the second finds no free room
    assert panels[0][0][1] >= 80 and panels[0][0][3] <= 120
    # a face filling the image: its title goes inside, its panel nowhere
    titles, panels = place_labels([(0, 0, 100, 100)], [(40, 12)], [(100, 7)], 10, 100, 100)
    assert titles[0] == (0, 0, 40, 12) and panels[0][1] == 0


def test_annotate_leaves_the_input_alone_and_draws_a_face_without_room():
    image = np.full((60, 60, 3), 90, np.uint8)
    face = FaceResult(box=[0.0, 0.0, 60.0, 60.0], label="happiness", confidence=0.7,
                      probabilities={"happiness": 0.7, "neutral": 0.3})
    canvas = annotate(image, ImageResult(source="x", width=60, height=60, faces=[face]))
    assert (image == 90).all() and canvas.shape == image.shape and (canvas != 90).any()


def test_on_video_a_tracked_faces_panel_stays_where_it_was_while_that_spot_is_free():
    """Face 0's panel goes to its right while face 1 sits under it; when face 1 leaves, an
    independent layout moves the panel back below, the video's layout keeps it on the right;
    when a face arrives on the right, it moves."""
    def frame(*boxes):
        faces = [FaceResult(box=list(box), label="neutral", confidence=0.5, track_id=i,
                            probabilities={"neutral": 0.5, "happiness": 0.5})
                 for i, box in enumerate(boxes)]
        return ImageResult(source="clip", width=400, height=300, faces=faces)

    def side(plan):
        (_, _, x2, y2), (rect, _) = plan.boxes[0], plan.panel_rects[0]
        return "below" if rect[1] >= y2 else "right" if rect[0] >= x2 else "elsewhere"

    crowded = frame((100, 50, 160, 110), (100, 125, 160, 185))
    alone = frame((100, 50, 160, 110), (330, 230, 390, 290))
    blocked = frame((100, 50, 160, 110), (165, 40, 225, 100))
    assert side(layout((300, 400, 3), crowded)) == "right"
    assert side(layout((300, 400, 3), alone)) == "below"
    placements = Placements()
    sides = [side(layout((300, 400, 3), f, placements=placements))
             for f in (crowded, alone, alone, blocked)]
    assert sides == ["right", "right", "right", "below"]
    assert set(placements) == {0, 1}
