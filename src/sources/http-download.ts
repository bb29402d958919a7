/**
 * A resumable, conditional HTTP download into a file.
 *
 * - Conditional GET: with the validators of the last download (ETag,
 *   Last-Modified), an unchanged resource costs one small request (304).
 * - Resume: the partial file and the validators of the response it came from
 *   are kept beside each other; the next attempt asks for the rest with
 *   Range + If-Range, so a changed resource is sent whole instead of spliced.
 * - Proxies: every request goes through the proxy the environment names
 *   (http_proxy, https_proxy, no_proxy; see http-proxy.ts).
 * - An aborted sync ends the request (util/abort.ts); what was received is
 *   kept for the next sync to resume.
 */
import fs from 'node:fs/promises';
import type { Response } from 'undici';
import { errnoCode, isOutOfSpace, ReposnapError } from '../errors.js';
import { timeoutSignal } from '../util/abort.js';
import { atomicWriteFile } from '../util/fs.js';

/**
 * undici's fetch and the proxy dispatcher made of it (http-proxy.ts),
 * loaded at the first request: loading undici takes about 80 ms, which
 * every command (status, a sync from rsync or git) would otherwise pay at
 * start-up.
 */
interface HttpClient {
  fetch: typeof import('undici').fetch;
  proxy: typeof import('./http-proxy.js');
}
let loading: Promise<HttpClient> | undefined;
function httpClient(): Promise<HttpClient> {
  loading ??= Promise.all([import('undici'), import('./http-proxy.js')]).then(([undici, proxy]) => ({ fetch: undici.fetch, proxy }));
  return loading;
}

export interface Validators {
  etag?: string;
  lastModified?: string;
}

interface PartialInfo extends Validators {
  url: string;
  /** Total size announced by the server, if it did. */
  total?: number;
}

export type DownloadResult =
  | { status: 'not-modified' }
  | { status: 'downloaded'; validators: Validators; bytesReceived: number; resumed: boolean };

export interface DownloadOptions {
  repo: string;
  url: string;
  /** Where the body goes; `${file}.json` keeps what a resume needs. */
  file: string;
  /** Validators of the copy we already have, for a conditional GET. */
  have?: Validators;
  timeoutMs?: number;
  /** The most the file may hold: a larger announced size is refused before any byte, a body that runs on is cut there. */
  maxBytes?: number;
  /** Told, as the body arrives, how much of the file is here and how large it is (when the server says). */
  onBytes?: (have: number, total: number | undefined) => void;
}

export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  const infoFile = `${opts.file}.json`;
  const partial = await readPartial(infoFile, opts.url);
  const have = partial ? await fileSize(opts.file) : 0;
  const headers: Record<string, string> = { 'user-agent': 'reposnap', 'accept-encoding': 'identity' };
  const validator = partial?.etag ?? partial?.lastModified;
  const resuming = partial !== undefined && have > 0 && validator !== undefined;
  if (resuming) {
    headers.range = `bytes=${have}-`;
    headers['if-range'] = validator;
  } else {
    if (opts.have?.etag) headers['if-none-match'] = opts.have.etag;
    if (opts.have?.lastModified) headers['if-modified-since'] = opts.have.lastModified;
  }

  const http = await httpClient();
  let res: Response;
  try {
    res = await http.fetch(opts.url, { headers, redirect: 'follow', signal: timeoutSignal(opts.timeoutMs ?? 30 * 60_000), dispatcher: http.proxy.downloadDispatcher() });
  } catch (err) {
    throw new ReposnapError('ESOURCE', `repo ${opts.repo}: cannot download ${opts.url}${http.proxy.throughProxy(opts.url)}: ${networkReason(err)}`, { cause: err });
  }

  if (res.status === 304 && !resuming) return { status: 'not-modified' };
  if (res.status === 416 && resuming && partial?.total === have) {
    // We had it all already (killed between the last byte and the check).
    return { status: 'downloaded', validators: pick(partial), bytesReceived: 0, resumed: true };
  }
  const append = res.status === 206 && resuming && contentRangeStart(res.headers.get('content-range')) === have;
  if (res.status !== 200 && !append) {
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 206 || res.status === 416) {
      // A range we did not ask for, or one the server no longer has: start over.
      await fs.rm(infoFile, { force: true });
      await fs.rm(opts.file, { force: true });
      return download({ ...opts });
    }
    throw new ReposnapError('ESOURCE', `repo ${opts.repo}: cannot download ${opts.url}${http.proxy.throughProxy(opts.url)}: HTTP ${res.status} ${res.statusText}`);
  }

  const validators: Validators = {
    ...(res.headers.get('etag') ? { etag: res.headers.get('etag') as string } : {}),
    ...(res.headers.get('last-modified') ? { lastModified: res.headers.get('last-modified') as string } : {}),
  };
  const length = Number(res.headers.get('content-length') ?? NaN);
  const total = append ? have + length : length;
  const max = opts.maxBytes ?? Number.POSITIVE_INFINITY;
  const tooLarge = (what: string): ReposnapError =>
    new ReposnapError('EUNSAFE', `repo ${opts.repo}: ${opts.url} is larger than sync-tarball-max-size (${what}, limit ${max} bytes); refusing it, nothing is kept`);
  if (Number.isFinite(total) && total > max) {
    await res.body?.cancel().catch(() => undefined);
    await dropDownload(opts.file);
    throw tooLarge(`${total} bytes announced`);
  }
  const info: PartialInfo = { url: opts.url, ...validators, ...(Number.isFinite(total) ? { total } : {}) };
  await atomicWriteFile(infoFile, JSON.stringify(info));

  let received = 0;
  // Each chunk is written before the next is read: when the connection
  // breaks, every byte received is on disk for the resume (a piped write
  // stream is destroyed with its buffered writes still pending).
  const fh = await fs.open(opts.file, append ? 'a' : 'w');
  try {
    if (!res.body) throw new Error('empty response');
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      if ((append ? have : 0) + received + chunk.length > max) throw tooLarge(`more than ${max} bytes sent`);
      await fh.write(chunk);
      received += chunk.length;
      opts.onBytes?.((append ? have : 0) + received, Number.isFinite(total) ? total : undefined);
    }
  } catch (err) {
    await fh.close();
    const got = (append ? have : 0) + received;
    if (err instanceof ReposnapError || isOutOfSpace(err)) {
      // Nothing to resume: the sync discards it (a full filesystem keeps
      // nothing, or the next sync would fail the same way).
      await dropDownload(opts.file);
      if (err instanceof ReposnapError) throw err;
      throw new ReposnapError('ESOURCE', `repo ${opts.repo}: the filesystem filled up after ${got} bytes of ${opts.url} (${networkReason(err)}); the partial download is discarded`, { cause: err });
    }
    throw new ReposnapError('ESOURCE', `repo ${opts.repo}: download of ${opts.url} interrupted after ${got} bytes${Number.isFinite(total) ? ` of ${total}` : ''} (${networkReason(err)}); the next sync resumes it`, { cause: err });
  }
  await fh.close();
  const size = await fileSize(opts.file);
  if (Number.isFinite(total) && size !== total) {
    throw new ReposnapError('ESOURCE', `repo ${opts.repo}: download of ${opts.url} is truncated (${size} of ${total} bytes); the next sync resumes it`);
  }
  return { status: 'downloaded', validators, bytesReceived: received, resumed: append };
}

/** Forget a partial download (after it was used or found bad). */
export async function dropDownload(file: string): Promise<void> {
  await fs.rm(`${file}.json`, { force: true });
  await fs.rm(file, { force: true });
}

async function readPartial(infoFile: string, url: string): Promise<PartialInfo | undefined> {
  try {
    const info = JSON.parse(await fs.readFile(infoFile, 'utf8')) as PartialInfo;
    return info.url === url ? info : undefined;
  } catch {
    return undefined;
  }
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 0;
    throw err;
  }
}

function contentRangeStart(h: string | null): number | undefined {
  const m = h ? /^bytes (\d+)-/.exec(h) : null;
  return m ? Number(m[1]) : undefined;
}

function pick(v: Validators): Validators {
  return { ...(v.etag ? { etag: v.etag } : {}), ...(v.lastModified ? { lastModified: v.lastModified } : {}) };
}

function networkReason(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  const code = errnoCode(cause) ?? errnoCode(err);
  const msg = cause instanceof Error ? cause.message : err instanceof Error ? err.message : String(err);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}


/** Whether the resource is unchanged since `have` (a conditional GET answered 304). */
export async function notModified(url: string, have: Validators): Promise<boolean> {
  const headers: Record<string, string> = { 'user-agent': 'reposnap' };
  if (have.etag) headers['if-none-match'] = have.etag;
  if (have.lastModified) headers['if-modified-since'] = have.lastModified;
  if (Object.keys(headers).length === 1) return false;
  try {
    const http = await httpClient();
    const res = await http.fetch(url, { headers, redirect: 'follow', signal: timeoutSignal(60_000), dispatcher: http.proxy.downloadDispatcher() });
    await res.body?.cancel().catch(() => undefined);
    return res.status === 304;
  } catch {
    return false; // the fill reports the error properly
  }
}

/**
 * A small resource (a checksum file, a signature) read whole into memory,
 * bounded in size and time: a server that sends without end, or never
 * finishes, fails the sync instead of filling memory or hanging it. Throws
 * an Error whose message is the reason alone, for the caller to place.
 */
export async function fetchSmall(url: string, maxBytes: number, timeoutMs = 60_000): Promise<Buffer> {
  const http = await httpClient();
  let res: Response;
  try {
    res = await http.fetch(url, { headers: { 'user-agent': 'reposnap', 'accept-encoding': 'identity' }, redirect: 'follow', signal: timeoutSignal(timeoutMs), dispatcher: http.proxy.downloadDispatcher() });
  } catch (err) {
    throw new Error(`${networkReason(err)}${http.proxy.throughProxy(url)}`, { cause: err });
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    // Leaving the loop early cancels the rest of the body.
    for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
      size += chunk.length;
      if (size > maxBytes) break;
      chunks.push(chunk);
    }
  } catch (err) {
    throw new Error(networkReason(err), { cause: err });
  }
  if (size > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
  return Buffer.concat(chunks);
}
