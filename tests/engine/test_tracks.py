"""Face tracks: detections linked by overlap, ended after a gap, split when identity contradicts."""

from __future__ import annotations

import numpy as np

from smartlock.engine.tracks import Detection, Recognition, Track, Tracker, face_crop, iou


def det(left: float, top: float = 50.0, size: float = 100.0) -> Detection:
    landmarks = np.array([[left + 30, top + 40], [left + 70, top + 40], [left + 50, top + 60],
                          [left + 35, top + 80], [left + 65, top + 80]], np.float32)
    return Detection(box=(left, top, left + size, top + size), score=0.9, landmarks=landmarks)


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 15, 10)) - 50 / 150) < 1e-9


def test_a_walking_face_keeps_its_track_and_history_is_bounded() -> None:
    tracker = Tracker(history=5)
    image = np.zeros((360, 640, 3), np.uint8)
    ids = set()
    for step in range(20):  # 8 px a frame: a person walking across a 640 px frame at 24 fps
        (track,) = tracker.update(step / 24, step + 1, [det(100 + 8 * step)], image)
        ids.add(track.id)
    assert len(ids) == 1
    assert len(track.history) == 5 and [obs.seq for obs in track.history] == [16, 17, 18, 19, 20]
    assert track.last.crop is not None and track.last.landmarks is not None
    assert track.last.frame_size == (640, 360)


def test_two_faces_get_two_tracks_and_keep_them_when_listed_in_another_order() -> None:
    tracker = Tracker()
    a, b = tracker.update(0.0, 1, [det(50), det(400)])
    b2, a2 = tracker.update(0.04, 2, [det(405), det(55)])
    assert a.id != b.id and (a2.id, b2.id) == (a.id, b.id)


def test_frames_analysed_further_apart_than_the_gap_keep_the_track_while_the_face_stays() -> None:
    """A slow recogniser (or the seed's Haar sampling) sees the face every 0.8 s: one track, not three."""
    tracker = Tracker(max_gap=0.7)
    ids = {tracker.update(0.8 * step, step + 1, [det(100 + step)])[0].id for step in range(4)}
    assert len(ids) == 1
    tracker.update(4.0, 9, [])  # the face is gone from an update...
    tracker.update(4.8, 10, [])  # ...and from the next, 0.8 s later: now the track ends
    assert tracker.active == []


def test_a_track_ends_after_the_gap_and_a_new_face_starts_a_new_one() -> None:
    tracker = Tracker(max_gap=0.5)
    (first,) = tracker.update(0.0, 1, [det(100)])
    tracker.update(0.3, 2, [])
    (again,) = tracker.update(0.45, 3, [det(102)])
    assert again.id == first.id
    tracker.update(1.0, 4, [])  # not seen by this update: it ends at the next one, 0.55 s after the face
    (later,) = tracker.update(1.1, 5, [det(102)])
    assert later.id != first.id and [track.id for track in tracker.ended] == [first.id]
    assert [track.id for track in tracker.active] == [later.id]


def test_far_apart_boxes_are_different_tracks() -> None:
    tracker = Tracker()
    (a,) = tracker.update(0.0, 1, [det(0)])
    (b,) = tracker.update(0.04, 2, [det(300)])
    assert a.id != b.id


def test_recognised_as_someone_else_splits_the_track() -> None:
    tracker = Tracker()
    (track,) = tracker.update(0.0, 1, [det(100)])
    track = tracker.recognised(track, Recognition("alice", 0.95), threshold=0.8)
    (same,) = tracker.update(0.04, 2, [det(102)])
    assert same.id == track.id
    other = tracker.recognised(same, Recognition("bob", 0.93), threshold=0.8)
    assert other.id != track.id and other.split_from == track.id
    assert [obs.seq for obs in track.history] == [1] and [obs.seq for obs in other.history] == [2]
    assert track.broken_at == 0.04  # the parent had someone else under its box (liveness: a new run)
    # a low-confidence answer is no contradiction, but breaks the run of confident ones
    (next_frame,) = tracker.update(0.08, 3, [det(104)])
    assert other.broken_at == float("-inf")
    assert tracker.recognised(next_frame, Recognition("carol", 0.3), 0.8).id == other.id
    assert other.broken_at == 0.08


def test_a_face_seen_again_after_a_miss_breaks_the_run() -> None:
    """Frames where the gate found nothing in the box (a hand over the face): whoever is seen next is not
    known to be the same face; the track goes on (liveness starts a new run after the break). A miss longer
    than MISS_HEAL breaks at once; a shorter one when the next recognition cannot tell (no embedding: the
    API)."""
    tracker = Tracker(miss_heal=0.2)
    (track,) = tracker.update(0.0, 1, [det(100)])
    tracker.update(0.04, 2, [det(102)])
    assert track.broken_at == float("-inf")
    tracker.update(0.08, 3, [])  # missed
    (again,) = tracker.update(0.12, 4, [det(104)])
    assert again.id == track.id and track.missed_at == 0.04 and track.broken_at == float("-inf")
    tracker.recognised(again, Recognition("alice", 0.95), 0.8)
    assert track.broken_at == 0.04 and track.missed_at is None
    for seq, t in enumerate((0.16, 0.20, 0.24), start=5):  # missed for 0.24 s
        tracker.update(t, seq, [])
    tracker.update(0.40, 8, [det(106)])
    assert track.broken_at == 0.12 and track.missed_at is None


def test_a_short_miss_heals_only_when_the_next_recognition_is_the_runs_face() -> None:
    """With embeddings (in-process): after a miss of at most MISS_HEAL, the next recognition naming the
    run's person with an embedding SAME_FACE alike to the run's confident ones continues the run; another
    name, a less alike embedding or nothing confident before the miss make it a break (at the miss, or
    later)."""
    alice, stranger = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]
    less_alike = (0.5 * alice + np.sqrt(0.75) * stranger).astype(np.float32)
    confident = Recognition("alice", 0.95, alice)

    def after_a_miss(recognition: Recognition, before: Recognition | None = confident) -> Track:
        tracker = Tracker(miss_heal=0.2)
        (track,) = tracker.update(0.0, 1, [det(100)])
        if before is not None:
            tracker.recognised(track, before, 0.8)
        tracker.update(0.04, 2, [])
        (again,) = tracker.update(0.08, 3, [det(102)])
        assert again.id == track.id and track.missed_at == 0.0
        tracker.recognised(again, recognition, 0.8)
        assert track.missed_at is None
        return track

    assert after_a_miss(Recognition("alice", 0.9, alice)).broken_at == float("-inf")
    assert after_a_miss(Recognition("alice", 0.5, alice)).broken_at == float("-inf")  # seen less well
    assert after_a_miss(Recognition("alice", 0.9, less_alike)).broken_at == 0.0
    # the run's person (SAME_FACE alike) but not the face seen just before the miss: another picture of her
    another_picture = (0.7 * alice + np.sqrt(0.51) * stranger).astype(np.float32)
    assert after_a_miss(Recognition("alice", 0.9, another_picture)).broken_at == 0.0
    assert Tracker().same_face < 0.7 < Tracker().miss_same_face
    assert after_a_miss(Recognition("bob", 0.5, alice)).broken_at == 0.08  # (the frame itself is one too)
    assert after_a_miss(Recognition("alice", 0.9, alice), before=None).broken_at == 0.0
    assert after_a_miss(Recognition("alice", 0.9, alice), Recognition("alice", 0.5, alice)).broken_at == 0.0
    # someone confidently recognised as another person: split off, the miss a break on the old track
    split = after_a_miss(Recognition("bob", 0.95, stranger))
    assert split.broken_at == 0.08 and split.missed_at is None


def test_only_a_miss_up_to_miss_heal_waits_for_the_next_recognition() -> None:
    for gap, pending in ((0.2, True), (0.21, False)):
        tracker = Tracker(miss_heal=0.2)
        (track,) = tracker.update(0.0, 1, [det(100)])
        tracker.update(0.1, 2, [])
        tracker.update(gap, 3, [det(101)])
        assert (track.missed_at == 0.0) is pending and (track.broken_at == 0.0) is not pending


def test_an_embedding_of_another_face_splits_the_track() -> None:
    tracker = Tracker()
    alice, stranger = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]
    (track,) = tracker.update(0.0, 1, [det(100)])
    tracker.recognised(track, Recognition("alice", 0.5, alice), 0.8)
    (same,) = tracker.update(0.04, 2, [det(101)])
    close = alice * 0.9 + stranger * 0.1
    assert tracker.recognised(same, Recognition("alice", 0.5, close), 0.8).id == track.id
    (same,) = tracker.update(0.08, 3, [det(102)])
    assert tracker.recognised(same, Recognition("alice", 0.5, stranger), 0.8).id != track.id


def test_the_runs_own_face_recognised_below_the_threshold_continues_the_run() -> None:
    """With embeddings (in-process): the face the run recognised, seen less well (a confidence under the
    threshold, an embedding SAME_FACE alike to the run's confident ones), does not break the run; an
    embedding less alike, another name, a low recognition with no confident one before it in the run, or
    no embedding at all (the API) do."""
    alice, stranger = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]

    def toward_stranger(cosine: float) -> np.ndarray:
        return (cosine * alice + np.sqrt(1 - cosine**2) * stranger).astype(np.float32)

    def frame(tracker: Tracker, t: float, seq: int, recognition: Recognition):
        (track,) = tracker.update(t, seq, [det(100 + seq)])
        return tracker.recognised(track, recognition, 0.8)

    tracker = Tracker()
    track = frame(tracker, 0.0, 1, Recognition("alice", 0.95, alice))
    less_well = frame(tracker, 0.04, 2, Recognition("alice", 0.3, toward_stranger(0.7)))
    assert less_well.id == track.id and track.broken_at == float("-inf")
    recognition = track.history[-1].recognition
    assert recognition is not None and recognition.same_face and recognition.confidence == 0.3
    frame(tracker, 0.08, 3, Recognition("alice", 0.3, toward_stranger(0.5)))  # same track (split at 0.2) ...
    assert track.broken_at == 0.08  # ... but not known to be the same face
    assert frame(tracker, 0.12, 4, Recognition("alice", 0.9, alice)).id == track.id
    assert frame(tracker, 0.16, 5, Recognition("bob", 0.3, alice)).id == track.id  # another name
    assert track.broken_at == 0.16
    frame(tracker, 0.20, 6, Recognition("alice", 0.3, alice))  # the confident ones are all before the break
    assert track.broken_at == 0.20
    frame(tracker, 0.24, 7, Recognition("alice", 0.9, alice))
    frame(tracker, 0.28, 8, Recognition("alice", 0.3))  # over the API: no embedding to tell
    assert track.broken_at == 0.28
    fresh = Tracker()
    first = frame(fresh, 0.0, 1, Recognition("alice", 0.3, alice))  # nothing confident to be alike to
    assert first.broken_at == 0.0


def test_the_same_face_threshold_keeps_a_strangers_frames_out_of_the_judged_run() -> None:
    """A photo recognised confidently, then a frame under the threshold just below SAME_FACE alike to it
    (another face in the box): a break, so the judged run starts after it; just above: no break."""
    from smartlock.engine.spoofing import LivenessCheck
    from smartlock.engine.tracks import SAME_FACE

    photo, other = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]
    for cosine, breaks in ((SAME_FACE - 0.01, True), (SAME_FACE + 0.01, False)):
        tracker = Tracker()
        frames = [Recognition("alice", 0.95, photo), Recognition("alice", 0.95, photo),
                  Recognition("alice", 0.5, (cosine * photo + np.sqrt(1 - cosine**2) * other)),
                  Recognition("alice", 0.95, photo)]
        for seq, recognition in enumerate(frames):
            (track,) = tracker.update(seq * 0.1, seq, [det(100 + seq)])
            track = tracker.recognised(track, recognition, 0.8)
        subject = LivenessCheck(object(), threshold=0.8).subject(track)  # type: ignore[arg-type]
        assert [obs.seq for obs in subject] == ([3] if breaks else [0, 1, 2, 3]), cosine


def test_face_crop_keeps_context_and_is_bounded() -> None:
    image = np.zeros((360, 640, 3), np.uint8)
    crop, (x0, y0, scale) = face_crop(image, (100, 100, 200, 200), context=0.5)  # type: ignore[misc]
    assert crop.shape == (200, 200, 3) and (x0, y0, scale) == (50.0, 50.0, 1.0)
    wide, (x0, y0, scale) = face_crop(image, (100, 100, 200, 200))  # type: ignore[misc]
    # one face on each side: 300 px, shrunk to 256
    assert (x0, y0) == (0.0, 0.0) and abs(scale - 256 / 300) < 1e-9 and wide.shape == (256, 256, 3)
    big, (_, _, big_scale) = face_crop(np.zeros((1000, 1000, 3), np.uint8), (250, 250, 750, 750))  # type: ignore[misc]
    assert max(big.shape[:2]) == 256 and big_scale < 1
    assert face_crop(image, (900, 10, 1000, 20)) is None  # outside the frame, context and all


def test_a_healed_miss_drops_the_unrecognised_frames_around_it() -> None:
    """Whoever the gate saw between the last recognition before a miss and the recognition that healed it
    is not known: those frames go; the recognised ones, the frames between two earlier recognitions and
    the frames after the healing one stay."""
    alice = np.eye(4, dtype=np.float32)[0]
    tracker = Tracker(miss_heal=0.2)

    def frame(t: float, seq: int, seen: bool = True, recognised: bool = False) -> None:
        (track,) = tracker.update(t, seq, [det(100 + seq)] if seen else []) or [None]
        if recognised and track is not None:
            tracker.recognised(track, Recognition("alice", 0.95, alice), 0.8)

    frame(0.00, 1, recognised=True)
    frame(0.04, 2)  # between two recognitions (max-fps): stays
    frame(0.08, 3, recognised=True)
    frame(0.12, 4)  # after the last recognition before the miss: goes
    frame(0.16, 5, seen=False)  # missed
    frame(0.20, 6)  # after the miss, before the healing recognition: go
    frame(0.24, 7)
    frame(0.28, 8, recognised=True)
    (track,) = tracker.active
    assert track.broken_at == float("-inf") and [obs.seq for obs in track.history] == [1, 2, 3, 8]
    frame(0.32, 9)  # after the healing recognition: stays (the judged run's end decides)
    assert [obs.seq for obs in track.history] == [1, 2, 3, 8, 9]
    assert track.history.maxlen == tracker.history
