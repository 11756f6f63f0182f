"""platesift: first-stage video filter for license-plate pipelines on edge hardware."""

import os

# FFmpeg's own logger writes straight to stderr ("[mjpeg @ 0x...] overread 8"), which would
# add noise to our one-line errors. OpenCV reads this once, when it first initialises FFmpeg;
# set OPENCV_FFMPEG_LOGLEVEL yourself to see FFmpeg's messages (e.g. 16 for errors).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

__version__ = "0.1.0"
__all__ = ["__version__"]
