"""Embeddings are for the engine's face tracks in-process only: the API never sends them, and a client never
believes one in an answer."""

from __future__ import annotations

import numpy as np

from smartlock.recognition.recognizer import Match, RecognizedFace
from smartlock.recognition.schemas import Recognition, parse_faces


def test_an_embedding_is_kept_in_process_and_never_serialised() -> None:
    face = RecognizedFace(box=(1, 2, 30, 40), detection_score=0.9, predictions=(Match("ada", 0.97, 0.7),),
                          embedding=np.ones(4, np.float32))
    inside = face.to_face(include_embedding=True)
    assert inside.embedding == [1.0, 1.0, 1.0, 1.0]
    assert "embedding" not in Recognition(faces=[inside]).model_dump_json()
    assert face.to_face().embedding is None


def test_an_embedding_in_an_answer_is_dropped() -> None:
    answer = [{"top_prediction": {"label": "ada", "confidence": 0.9},
               "bounding_box": {"left": 1, "top": 2, "right": 3, "bottom": 4}, "embedding": [0.5] * 512}]
    (face,) = parse_faces(answer)
    assert face.embedding is None


def test_an_embedding_is_kept_only_when_the_caller_computed_it() -> None:
    """The engine's in-process recogniser asks to keep what it computed; an HTTP answer never is."""
    face = RecognizedFace(box=(1, 2, 30, 40), detection_score=0.9, predictions=(Match("ada", 0.97, 0.7),),
                          embedding=np.ones(4, np.float32)).to_face(include_embedding=True)
    assert parse_faces([face], keep_embeddings=True)[0].embedding == [1.0, 1.0, 1.0, 1.0]
    assert parse_faces([face])[0].embedding is None
