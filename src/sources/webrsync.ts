/**
 * `sync-type = webrsync`, as Portage users configure it: the tarball source
 * (tarball.ts, which does all the work) with the defaults of Gentoo's daily
 * snapshots, so that a repos.conf written for emerge-webrsync works as it is.
 *
 * - sync-uri is optional. emerge-webrsync ignores it and picks a mirror from
 *   GENTOO_MIRRORS in make.conf, so Portage users rarely set one; reposnap
 *   reads no make.conf, and defaults to Gentoo's own snapshot,
 *   https://distfiles.gentoo.org/snapshots/gentoo-latest.tar.xz (a mirror's
 *   snapshots/gentoo-latest.tar.xz URL may be set instead). A sync-uri that
 *   is not http(s) (the rsync:// URL of a section that was switched from
 *   rsync) is a configuration error rather than ignored as Portage does:
 *   the snapshot then comes from the URL the file names, or from the
 *   default because the line was removed, never from a guess.
 * - The detached signature is the URL plus ".gpgsig", as Gentoo publishes
 *   it (sync-tarball-signature-uri to change it).
 * - sync-webrsync-verify-signature defaults to no, as in Portage; Gentoo's
 *   shipped repos.conf sets it to yes with sync-openpgp-key-path =
 *   /usr/share/openpgp-keys/gentoo-release.asc, and so should a
 *   configuration written by hand.
 *
 * No delta snapshots (sync-webrsync-delta) and no keeping of downloaded
 * snapshots (sync-webrsync-keep-snapshots): snapshots share unchanged files
 * with the previous one anyway, and the download is kept only to resume it.
 */
import type { SourceKind } from './kind.js';
import { isHttpUrl, parseTarballKeys, TARBALL_KEYS, TarballSource, tarballOptions, type TarballKeys } from './tarball.js';

export const WEBRSYNC_DEFAULT_URI = 'https://distfiles.gentoo.org/snapshots/gentoo-latest.tar.xz';

export interface WebrsyncConfig extends TarballKeys {
  type: 'webrsync';
}

/** The tarball source under its Portage name, so that the snapshot metadata says webrsync. */
export class WebrsyncSource extends TarballSource {
  override readonly type = 'webrsync' as const;
}

export const webrsyncKind: SourceKind<WebrsyncConfig> = {
  type: 'webrsync',
  keys: TARBALL_KEYS,
  defaultUri: WEBRSYNC_DEFAULT_URI,
  checkUri: (uri) =>
    isHttpUrl(uri)
      ? undefined
      : `sync-type = webrsync fetches a snapshot tarball over http(s), got "${uri}" (remove sync-uri for ${WEBRSYNC_DEFAULT_URI}, or name a mirror's snapshots/gentoo-latest.tar.xz)`,
  parse: (r) => ({ type: 'webrsync', ...parseTarballKeys(r) }),
  create: (uri, c) => new WebrsyncSource(uri, tarballOptions(uri, c, '.gpgsig')),
};
