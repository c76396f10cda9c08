// Downloads through the API's own exports (GET /transcripts/...?format=), so page and API agree.
import { api, meetingPath } from "./api.js";

export const EXPORTS = [
  ["txt", "TXT"], ["srt", "SRT"], ["vtt", "WebVTT"], ["json", "JSON"], ["md", "Markdown"],
];

export async function download(platform, nativeId, format) {
  const path = `/transcripts${meetingPath(platform, nativeId)}`;
  const { data } = await api(path, { raw: true, query: format === "json" ? undefined : { format } });
  const url = URL.createObjectURL(data);
  const a = document.createElement("a");
  a.href = url;
  a.download = `${platform}-${nativeId}.${format}`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
