/**
 * Tarball downloads through the proxy the environment names (http_proxy,
 * https_proxy, no_proxy, read as curl reads them), against real servers on
 * 127.0.0.1: an upstream over HTTP and one over HTTPS, and a proxy written
 * here that forwards plain HTTP requests (absolute URLs) and tunnels
 * CONNECT, logging every request it gets.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyFor } from '../src/sources/http-proxy.js';
import { freePort, rcuConf, readTree, runCli, tmpdir, writeConf } from './helpers.js';
import { tarEntry, tarOf } from '../torture/lib.js';

const closers: Array<() => void> = [];
afterAll(() => {
  for (const c of closers) c();
});

function listen(server: http.Server | https.Server): Promise<number> {
  closers.push(() => {
    server.closeAllConnections();
    server.close();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** The snapshot archive both upstreams serve, with an ETag; logs the paths asked for. */
function serveArchive(body: Buffer, log: string[]) {
  const etag = `"${createHash('sha1').update(body).digest('hex')}"`;
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    log.push(`${req.method} ${req.url}${req.headers['x-test-proxy'] ? ' (via proxy)' : ''}`);
    if (req.url !== '/gentoo.tar') return void res.writeHead(404).end();
    if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end();
    res.writeHead(200, { etag, 'content-length': body.length }).end(body);
  };
}

/** A forward proxy: absolute-URL requests are forwarded (marked), CONNECT is tunneled. */
async function startProxy(): Promise<{ port: number; log: string[] }> {
  const log: string[] = [];
  const server = http.createServer((req, res) => {
    log.push(`${req.method} ${req.url}`);
    if (!/^http:\/\//.test(req.url ?? '')) return void res.writeHead(400).end('not a proxy request');
    const out = http.request(req.url as string, { method: req.method, headers: { ...req.headers, 'x-test-proxy': '1' } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.writeHead(502).end());
    req.pipe(out);
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    log.push(`CONNECT ${req.url}`);
    const [host, port] = (req.url ?? '').split(':');
    const up = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  return { port: await listen(server), log };
}

/** No proxy variable from the environment the tests run in: each test says what it wants. */
const NO_PROXY_ENV = { http_proxy: '', HTTP_PROXY: '', https_proxy: '', HTTPS_PROXY: '', no_proxy: '', NO_PROXY: '', all_proxy: '', ALL_PROXY: '' };

const archive = tarOf(tarEntry('gentoo-20261122/', { type: '5', mode: 0o755 }), tarEntry('gentoo-20261122/profiles/repo_name', { data: 'gentoo\n' }), tarEntry('gentoo-20261122/app-misc/foo/foo-1.ebuild', { data: 'EAPI=8\n' }));
const expected = { 'app-misc': 'dir', 'app-misc/foo': 'dir', 'app-misc/foo/foo-1.ebuild': 'EAPI=8\n', profiles: 'dir', 'profiles/repo_name': 'gentoo\n' };

async function treeOf(dir: string): Promise<Record<string, string>> {
  const t = await readTree(path.join(dir, 'repo'));
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.type === 'file' ? (v.content ?? '') : v.type]));
}

let httpPort = 0;
const httpLog: string[] = [];
let httpsPort = 0;
const httpsLog: string[] = [];
let caFile = '';

beforeAll(async () => {
  httpPort = await listen(http.createServer(serveArchive(archive, httpLog)));
  // A certificate for 127.0.0.1, trusted by the reposnap under test through NODE_EXTRA_CA_CERTS.
  const dir = tmpdir('proxy-tls');
  const key = path.join(dir, 'key.pem');
  caFile = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', caFile, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  httpsPort = await listen(https.createServer({ key: await fs.readFile(key), cert: await fs.readFile(caFile) }, serveArchive(archive, httpsLog)));
});

async function repo(tag: string, url: string): Promise<{ dir: string; conf: string }> {
  const dir = tmpdir(tag);
  return { dir, conf: await writeConf(dir, rcuConf(dir, '', 'tarball', url)) };
}

describe('downloads through a proxy', () => {
  it('an http:// snapshot goes through http_proxy as a forward-proxy request, the conditional GET too', async () => {
    const proxy = await startProxy();
    const { dir, conf } = await repo('proxy-http', `http://127.0.0.1:${httpPort}/gentoo.tar`);
    const env = { ...NO_PROXY_ENV, http_proxy: `http://127.0.0.1:${proxy.port}` };
    const before = httpLog.length;
    const first = await runCli(['-c', conf, 'sync'], { env });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(await treeOf(dir)).toEqual(expected);
    const url = `http://127.0.0.1:${httpPort}/gentoo.tar`;
    expect(proxy.log).toEqual([`GET ${url}`]);
    // The upstream got it from the proxy, and only from it.
    expect(httpLog.slice(before)).toEqual(['GET /gentoo.tar (via proxy)']);

    // The next sync asks whether it changed (304), through the proxy as well.
    const second = await runCli(['-c', conf, 'sync', '--json'], { env });
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout).results[0].outcome).toBe('up-to-date');
    expect(proxy.log).toEqual([`GET ${url}`, `GET ${url}`]);
  });

  it('no_proxy (a name, an address block) sends the request directly', async () => {
    for (const noProxy of ['localhost,127.0.0.1', '127.0.0.0/8', `.example.org, 127.0.0.1:${httpPort}`]) {
      const proxy = await startProxy();
      const { dir, conf } = await repo('proxy-bypass', `http://127.0.0.1:${httpPort}/gentoo.tar`);
      const before = httpLog.length;
      const r = await runCli(['-c', conf, 'sync'], { env: { ...NO_PROXY_ENV, http_proxy: `http://127.0.0.1:${proxy.port}`, NO_PROXY: noProxy } });
      expect(r.code, r.stderr).toBe(0);
      expect(await treeOf(dir)).toEqual(expected);
      expect(proxy.log, noProxy).toEqual([]);
      expect(httpLog.slice(before)).toEqual(['GET /gentoo.tar']);
    }
  });

  it('HTTP_PROXY in upper case is not read for http:// URLs (as curl: httpoxy)', async () => {
    const proxy = await startProxy();
    const { dir, conf } = await repo('proxy-upper', `http://127.0.0.1:${httpPort}/gentoo.tar`);
    const r = await runCli(['-c', conf, 'sync'], { env: { ...NO_PROXY_ENV, HTTP_PROXY: `http://127.0.0.1:${proxy.port}` } });
    expect(r.code, r.stderr).toBe(0);
    expect(await treeOf(dir)).toEqual(expected);
    expect(proxy.log).toEqual([]);
  });

  it('an https:// snapshot goes through HTTPS_PROXY in a CONNECT tunnel', async () => {
    const proxy = await startProxy();
    const { dir, conf } = await repo('proxy-https', `https://127.0.0.1:${httpsPort}/gentoo.tar`);
    const before = httpsLog.length;
    const r = await runCli(['-c', conf, 'sync'], { env: { ...NO_PROXY_ENV, HTTPS_PROXY: `127.0.0.1:${proxy.port}`, NODE_EXTRA_CA_CERTS: caFile } });
    expect(r.code, r.stderr).toBe(0);
    expect(await treeOf(dir)).toEqual(expected);
    // The proxy saw where to, never what: the request itself went through the tunnel.
    expect(proxy.log).toEqual([`CONNECT 127.0.0.1:${httpsPort}`]);
    expect(httpsLog.slice(before)).toEqual(['GET /gentoo.tar']);
  });

  it('a proxy that does not answer fails the sync, naming the proxy without its password; the previous snapshot stays', async () => {
    const { dir, conf } = await repo('proxy-down', `http://127.0.0.1:${httpPort}/gentoo.tar`);
    expect((await runCli(['-c', conf, 'sync'], { env: NO_PROXY_ENV })).code).toBe(0);
    const current = await fs.realpath(path.join(dir, 'repo'));
    const port = await freePort();
    const r = await runCli(['-c', conf, 'sync'], { env: { ...NO_PROXY_ENV, http_proxy: `http://reposnap:s3cret@127.0.0.1:${port}` } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`through the proxy http://127.0.0.1:${port}`);
    expect(r.stderr).toContain('ECONNREFUSED');
    expect(r.stderr).not.toContain('s3cret');
    expect(await fs.realpath(path.join(dir, 'repo'))).toBe(current);
  });
});

describe('which proxy, as curl decides', () => {
  const via = (url: string, env: NodeJS.ProcessEnv): string | undefined => proxyFor(new URL(url), env);
  const P = 'http://proxy.example:3128';

  it('reads http_proxy (lower case only) for http://, https_proxy or HTTPS_PROXY for https://', () => {
    expect(via('http://a.example/x', { http_proxy: P })).toBe(P);
    expect(via('http://a.example/x', { HTTP_PROXY: P })).toBeUndefined();
    expect(via('http://a.example/x', { https_proxy: P })).toBeUndefined();
    expect(via('https://a.example/x', { https_proxy: P })).toBe(P);
    expect(via('https://a.example/x', { HTTPS_PROXY: P })).toBe(P);
    expect(via('https://a.example/x', { http_proxy: P })).toBeUndefined();
    // Lower case first; an empty variable counts as unset.
    expect(via('https://a.example/x', { https_proxy: 'http://low:1', HTTPS_PROXY: 'http://up:1' })).toBe('http://low:1');
    expect(via('https://a.example/x', { https_proxy: '', HTTPS_PROXY: 'http://up:1' })).toBe('http://up:1');
    // No scheme: http://, as curl assumes.
    expect(via('http://a.example/x', { http_proxy: 'proxy.example:3128' })).toBe(P);
  });

  it('no_proxy: names with their subdomains, addresses, blocks, ports, and *', () => {
    const env = (list: string): NodeJS.ProcessEnv => ({ http_proxy: P, https_proxy: P, no_proxy: list });
    const direct = (url: string, list: string): boolean => via(url, env(list)) === undefined;
    expect(direct('http://example.org/', 'example.org')).toBe(true);
    expect(direct('http://mirror.example.org/', 'example.org')).toBe(true);
    expect(direct('http://mirror.example.org/', '.example.org')).toBe(true);
    expect(direct('http://mirror.example.org/', '*.example.org')).toBe(true);
    expect(direct('http://badexample.org/', 'example.org')).toBe(false);
    expect(direct('http://example.org.evil/', 'example.org')).toBe(false);
    expect(direct('http://a.example/', 'b.example, a.example')).toBe(true);
    expect(direct('http://A.Example./', 'a.example')).toBe(true);
    expect(direct('http://a.example/', '*')).toBe(true);
    expect(direct('http://a.example:8080/', 'a.example:8080')).toBe(true);
    expect(direct('http://a.example/', 'a.example:8080')).toBe(false);
    expect(direct('https://a.example/', 'a.example:443')).toBe(true);
    expect(direct('http://10.1.2.3/', '10.0.0.0/8')).toBe(true);
    expect(direct('http://11.1.2.3/', '10.0.0.0/8')).toBe(false);
    expect(direct('http://10.1.2.3/', '10.1.2.3')).toBe(true);
    expect(direct('http://[::1]:8080/', '::1')).toBe(true);
    expect(direct('http://[::1]:8080/', '[::1]:8080')).toBe(true);
    expect(direct('http://[fd00::5]/', 'fd00::/8')).toBe(true);
    expect(direct('http://a.example/', '')).toBe(false);
    // NO_PROXY when no_proxy is unset.
    expect(via('http://a.example/', { http_proxy: P, NO_PROXY: 'a.example' })).toBeUndefined();
  });
});
