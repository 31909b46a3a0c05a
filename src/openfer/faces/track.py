"""Stable face ids across video frames: greedy IoU matching (SORT without a motion model)."""

from __future__ import annotations

import numpy as np


def iou(a, b) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class IoUTracker:
    """Assigns each box the id of the best-overlapping track of the previous frames.

    A track matches a new box when their IoU is at least ``min_iou``; pairs are taken greedily
    in order of decreasing IoU. A track unmatched for more than ``max_age`` processed frames ends;
    an unmatched box starts a new track. Ids count up from 0 and are never reused.
    """

    def __init__(self, min_iou: float = 0.3, max_age: int = 5):
        self.min_iou, self.max_age = min_iou, max_age
        self.tracks: dict[int, tuple[tuple, int]] = {}   # id -> (box, frames since seen)
        self.next_id = 0

    def update(self, boxes: list) -> list[int]:
        ids: list[int | None] = [None] * len(boxes)
        pairs = sorted(((iou(box, track_box), i, tid)
                        for i, box in enumerate(boxes)
                        for tid, (track_box, _) in self.tracks.items()), reverse=True)
        used_tracks: set[int] = set()
        for overlap, i, tid in pairs:
            if overlap < self.min_iou:
                break
            if ids[i] is None and tid not in used_tracks:
                ids[i] = tid
                used_tracks.add(tid)
        for tid in list(self.tracks):
            if tid not in used_tracks:
                box, age = self.tracks[tid]
                if age + 1 > self.max_age:
                    del self.tracks[tid]
                else:
                    self.tracks[tid] = (box, age + 1)
        for i, box in enumerate(boxes):
            if ids[i] is None:
                ids[i] = self.next_id
                self.next_id += 1
            self.tracks[ids[i]] = (tuple(np.asarray(box, float)), 0)
        return ids
