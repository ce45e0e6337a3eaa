// Data URLs and media types, as the request schema checks them, the capability facts read them
// and the adapters translate them. Pure (no Buffer): the routing core runs inside workflows.

export interface DataUrlParts {
  /** Lower-cased; "text/plain" when the URL names none (RFC 2397). */
  mediaType: string;
  base64: boolean;
  payload: string;
}

const DATA_URL = /^data:([^;,]*)((?:;[^;,]*)*),(.*)$/s;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function splitDataUrl(url: string): DataUrlParts | undefined {
  const m = DATA_URL.exec(url);
  if (!m) return undefined;
  return { mediaType: (m[1] || 'text/plain').toLowerCase(), base64: m[2].split(';').includes('base64'), payload: m[3] };
}

export function isBase64(text: string): boolean {
  return text.length > 0 && text.length % 4 !== 1 && BASE64.test(text);
}

/** Why a data URL cannot be decoded, or undefined when it can (the adapters decode it later). */
export function dataUrlProblem(url: string): string | undefined {
  const parts = splitDataUrl(url);
  if (!parts) return 'is not a data URL (data:<media type>[;base64],<data>)';
  if (parts.payload.length === 0) return 'has no data';
  if (parts.base64) return isBase64(parts.payload) ? undefined : 'is not valid base64';
  try {
    decodeURIComponent(parts.payload);
    return undefined;
  } catch {
    return 'has malformed percent-encoding';
  }
}

const EXTENSIONS: Record<string, string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  gif: 'image/gif',
  webp: 'image/webp',
  heic: 'image/heic',
  pdf: 'application/pdf',
  mp3: 'audio/mpeg',
  wav: 'audio/wav',
};

export function guessMediaType(pathOrUrl: string): string | undefined {
  const ext = /\.([a-z0-9]+)(?:[?#].*)?$/i.exec(pathOrUrl)?.[1]?.toLowerCase();
  return ext ? EXTENSIONS[ext] : undefined;
}

/** OpenAI's file part carries a data URL or (per its docs) bare base64, PDF unless the filename says otherwise. */
export function fileMediaType(fileData: string, filename?: string): string {
  return splitDataUrl(fileData)?.mediaType ?? guessMediaType(filename ?? '') ?? 'application/pdf';
}
