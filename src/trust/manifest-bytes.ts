/**
 * How a sub-Manifest's bytes become the text that is parsed: the one way
 * the verification and the read-ahead both decode them, so that what was
 * read ahead is exactly what the verification would make of the same
 * bytes.
 */
import { gunzipSync } from 'node:zlib';

/** No Manifest, compressed or not, is larger than this. */
export const MAX_MANIFEST_BYTES = 512 * 1024 * 1024;

/** gzip data inflated, refused (zlib's error) past `limit` bytes. */
export function inflateGzip(data: Buffer, limit = MAX_MANIFEST_BYTES): Buffer {
  return gunzipSync(data, { maxOutputLength: limit });
}

/** Decompressed bytes as the text that is parsed. */
export function manifestText(decompressed: Buffer): string {
  return decompressed.toString('utf8');
}
