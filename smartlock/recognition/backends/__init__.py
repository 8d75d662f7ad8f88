"""Recognition backends: each turns an RGB image into faces with box, landmarks, score and embedding."""
