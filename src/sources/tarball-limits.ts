/** How much a tarball source may download and unpack (sync-tarball-max-*). */
/** tarball: the most a download may write, and an archive unpack to (bytes), and unpacked/archive. */
export interface TarballLimits {
  maxDownload: number;
  maxUnpacked: number;
  /** 0: no ratio limit. */
  maxRatio: number;
}

/**
 * Room to spare for a Gentoo snapshot (about 45 MB as .tar.xz, 700 MB
 * unpacked, a ratio near 16), and nothing like a filesystem's worth from
 * a hostile server or a small archive that decompresses without end.
 */
export const DEFAULT_TARBALL_LIMITS: TarballLimits = { maxDownload: 2 * 1024 ** 3, maxUnpacked: 16 * 1024 ** 3, maxRatio: 100 };
