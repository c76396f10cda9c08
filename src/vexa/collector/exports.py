"""The collector's side of transcript exports: the HTTP answer to ``?format=`` (vexa.transcript_export)."""

from __future__ import annotations

from starlette.responses import Response

from vexa.schemas import TranscriptionResponse
from vexa.transcript_export import MEDIA_TYPES, ExportFormat, filename, render

__all__ = ["ExportFormat", "export_response"]


def export_response(transcript: TranscriptionResponse, fmt: ExportFormat) -> Response:
    """The rendered transcript as a download (a file name, the format's media type)."""
    return Response(
        render(transcript, fmt),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename(transcript, fmt)}"'},
    )
