/**
 * Downloads through the proxy the environment names, read as curl reads it:
 *
 * - http:// URLs go through `http_proxy`, in lower case only: like curl,
 *   reposnap ignores HTTP_PROXY, which CGI-style environments set from a
 *   request's "Proxy:" header ("httpoxy");
 * - https:// URLs go through `https_proxy`, or `HTTPS_PROXY`;
 * - `no_proxy` (or `NO_PROXY`) lists, separated by commas, what is reached
 *   directly: a host name (itself and every name below it; a leading "." or
 *   "*." means the same), an IP address or a CIDR block, each with an
 *   optional ":port"; "*" alone means every host.
 *
 * An empty variable counts as unset (so does curl). A proxy is an http://
 * URL (the scheme may be left out) or an https:// one, with optional
 * credentials. Plain HTTP is sent to the proxy as a forward-proxy request
 * (the absolute URL), as curl and wget send it (most proxies refuse CONNECT
 * to port 80); HTTPS goes through a CONNECT tunnel, so the proxy sees the
 * host and port, never the content.
 *
 * Node's built-in fetch reads none of these on the versions reposnap
 * supports; undici (the library that fetch is made of, at a version that
 * runs on Node 20.9) does the proxying, and every download goes through
 * its fetch with this dispatcher, proxy or not: one path for all.
 */
import { BlockList, isIP } from 'node:net';
import { Agent, Dispatcher, ProxyAgent } from 'undici';

/** The variables read, in the order they are looked at. */
export const PROXY_VARIABLES = ['http_proxy', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY'] as const;

function variable(env: NodeJS.ProcessEnv, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = env[n]?.trim();
    if (v) return v;
  }
  return undefined;
}

/**
 * The proxy a request to `url` goes through under `env`, as a URL, or
 * undefined for a direct connection.
 */
export function proxyFor(url: URL, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const proxy = url.protocol === 'https:' ? variable(env, 'https_proxy', 'HTTPS_PROXY') : url.protocol === 'http:' ? variable(env, 'http_proxy') : undefined;
  if (proxy === undefined) return undefined;
  const noProxy = variable(env, 'no_proxy', 'NO_PROXY');
  if (noProxy !== undefined && bypassed(url, noProxy)) return undefined;
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(proxy) ? proxy : `http://${proxy}`;
}

/** Whether `url` is reached directly under the no_proxy list `list`. */
function bypassed(url: URL, list: string): boolean {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase().replace(/\.$/, '');
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  for (const raw of list.split(',')) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    const { name, port: only } = splitPort(entry);
    if (only !== undefined && only !== port) continue;
    if (matchesHost(host, name)) return true;
  }
  return false;
}

/** "name:port", "[v6]:port", or a bare IPv6 address (which has colons of its own). */
function splitPort(entry: string): { name: string; port?: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) return { name: bracketed[1] as string, ...(bracketed[2] !== undefined ? { port: Number(bracketed[2]) } : {}) };
  const m = /^([^:]+):(\d+)$/.exec(entry);
  return m ? { name: m[1] as string, port: Number(m[2]) } : { name: entry };
}

function matchesHost(host: string, name: string): boolean {
  const slash = name.indexOf('/');
  if (slash >= 0) {
    // A CIDR block: matches addresses in it, never names.
    const addr = name.slice(0, slash);
    const bits = Number(name.slice(slash + 1));
    const family = isIP(addr);
    if (family === 0 || isIP(host) !== family || !Number.isInteger(bits)) return false;
    const block = new BlockList();
    try {
      block.addSubnet(addr, bits, family === 6 ? 'ipv6' : 'ipv4');
    } catch {
      return false;
    }
    return block.check(host, family === 6 ? 'ipv6' : 'ipv4');
  }
  if (isIP(name) !== 0 || isIP(host) !== 0) return host === name;
  const domain = name.replace(/^\*?\./, '').replace(/\.$/, '');
  return domain !== '' && (host === domain || host.endsWith(`.${domain}`));
}

/** A proxy URL as it may be shown: without its credentials. */
export function shownProxy(proxy: string): string {
  try {
    const u = new URL(proxy);
    u.username = '';
    u.password = '';
    return u.href.replace(/\/$/, '');
  } catch {
    return '(a proxy URL that cannot be read)';
  }
}

/**
 * Sends each request directly or through its proxy, decided per origin
 * (so that a redirect to another host is decided again).
 */
class EnvProxyDispatcher extends Dispatcher {
  private readonly direct = new Agent();
  private readonly viaProxy = new Map<string, ProxyAgent>();

  constructor(private readonly env: NodeJS.ProcessEnv) {
    super();
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandlers): boolean {
    const proxy = opts.origin === undefined ? undefined : proxyFor(new URL(String(opts.origin)), this.env);
    return (proxy === undefined ? this.direct : this.agentFor(proxy)).dispatch(opts, handler);
  }

  private agentFor(proxy: string): ProxyAgent {
    let agent = this.viaProxy.get(proxy);
    if (agent === undefined) {
      const scheme = new URL(proxy).protocol;
      if (scheme !== 'http:' && scheme !== 'https:') {
        // Fails the fetch, whose message names the proxy.
        throw new Error(`${scheme.replace(/:$/, '')} proxies are not supported, only http:// and https:// ones`);
      }
      // proxyTunnel false: plain HTTP as a forward-proxy request, HTTPS still tunneled.
      agent = new ProxyAgent({ uri: proxy, proxyTunnel: false });
      this.viaProxy.set(proxy, agent);
    }
    return agent;
  }
}

let current: { key: string; dispatcher: Dispatcher } | undefined;

/** The dispatcher for downloads under the environment as it is now. */
export function downloadDispatcher(): Dispatcher {
  const env: NodeJS.ProcessEnv = {};
  for (const v of PROXY_VARIABLES) if (process.env[v] !== undefined) env[v] = process.env[v];
  const key = JSON.stringify(env);
  if (current?.key !== key) current = { key, dispatcher: new EnvProxyDispatcher(env) };
  return current.dispatcher;
}

/** " through the proxy P" when `url` goes through one, for messages. */
export function throughProxy(url: string): string {
  let proxy: string | undefined;
  try {
    proxy = proxyFor(new URL(url));
  } catch {
    return '';
  }
  return proxy === undefined ? '' : ` through the proxy ${shownProxy(proxy)}`;
}
