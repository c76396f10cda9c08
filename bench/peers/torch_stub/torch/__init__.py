"""A stand-in for PyTorch, for upstream WhisperLive only: its faster_whisper server imports torch to ask
whether CUDA is there. On these CPU machines the answer is no, and installing torch is not needed."""


class cuda:
    @staticmethod
    def is_available() -> bool:
        return False
