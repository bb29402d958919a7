/**
 * Every repos.conf key Portage defines, and what reposnap does with each.
 *
 * The list is Portage's own: the keys its RepoConfig reads from a section
 * (lib/portage/repository/config.py), the `module_specific_options` each of
 * its sync modules declares (lib/portage/sync/modules/*), and the keys its
 * portage(5) man page documents. Keeping it explicit, rather than accepting
 * anything under Portage's prefixes (`sync-git-`, `sync-rsync-`...), is what
 * lets a misspelt key such as `sync-git-branh` be told apart from a real one.
 *
 * A key is `honoured` when reposnap acts on it (as Portage does, or as
 * README.md says where it does more or refuses more); `ignored` when a
 * configuration that sets it still means what its author meant without it;
 * `refused` when a value that asks for something reposnap cannot do would,
 * if ignored, leave a tree the user did not ask for. The keys reposnap adds
 * (sync-rcu-backend, sync-verify-command, sync-tarball-*, sync-git-branch...)
 * are not Portage's and are not here.
 */

export type KeyFate =
  | { fate: 'honoured' } // reposnap acts on it as Portage does (or as documented)
  | { fate: 'ignored'; why: string } // accepted without effect; `why` is one short line a user reads in a warning or the docs
  | { fate: 'refused'; why: string }; // a configuration error if set to something that asks for behaviour reposnap can't give

/** Where Portage reads the key: its RepoConfig ('repo'), or the sync module of that sync-type. */
type Origin = 'repo' | 'rsync' | 'git' | 'webrsync' | 'mercurial' | 'cvs';

const honoured: KeyFate = { fate: 'honoured' };
const ignored = (why: string): KeyFate => ({ fate: 'ignored', why });
const refused = (why: string): KeyFate => ({ fate: 'refused', why });

// Shared reasons, so that keys ignored for one cause read the same.
const AT_USE = 'read by Portage when it uses the repository, not when it syncs it';
const NO_KEY_FETCH = 'reposnap never fetches or refreshes keys over the network; the key file is used as it is';
const NO_MERCURIAL = 'only for sync-type = mercurial, which reposnap does not sync';
const GIT_ENV = 'reposnap passes no per-repository environment to git; set it in the environment reposnap runs in';

const ENTRIES: readonly (readonly [key: string, origin: Origin, fate: KeyFate])[] = [
  // RepoConfig: what a repository is and where it lives.
  ['location', 'repo', honoured],
  ['auto-sync', 'repo', honoured],
  ['main-repo', 'repo', ignored(AT_USE)],
  ['priority', 'repo', ignored(AT_USE)],
  ['masters', 'repo', ignored(AT_USE)],
  ['aliases', 'repo', ignored(AT_USE)],
  ['eclass-overrides', 'repo', ignored(AT_USE)],
  ['force', 'repo', ignored(AT_USE)],
  ['strict-misc-digests', 'repo', ignored('read by Portage when it checks a package before building it, not when it syncs')],
  ['usepkg-exclude', 'repo', ignored('read by emerge when it chooses binary packages, not when it syncs')],
  ['usepkg-include', 'repo', ignored('read by emerge when it chooses binary packages, not when it syncs')],
  ['format', 'repo', ignored('Portage reads it and does nothing with it either')],
  // Portage's git sync keeps local changes in a volatile repository (its rsync
  // sync never does); reposnap always publishes upstream's tree, so ignoring
  // it would discard the very changes the user asked to keep.
  ['volatile', 'repo', refused('volatile = yes asks a git sync to keep local changes; reposnap always publishes upstream\'s tree as it is')],

  // RepoConfig: how the repository is synced.
  ['sync-type', 'repo', honoured],
  ['sync-uri', 'repo', honoured],
  ['sync-depth', 'repo', honoured],
  // The first clone's depth; reposnap fetches with sync-depth every time, and
  // history depth never changes the tree it publishes (snapshots hold no .git).
  ['clone-depth', 'repo', ignored('reposnap fetches with sync-depth every time; history depth does not change the tree it publishes')],
  ['sync-allow-hardlinks', 'repo', honoured],
  ['sync-umask', 'repo', honoured],
  ['sync-user', 'repo', honoured],
  ['sync-hooks-only-on-change', 'repo', honoured],
  ['sync-rcu', 'repo', honoured],
  ['sync-rcu-store-dir', 'repo', honoured],
  ['sync-rcu-spare-snapshots', 'repo', honoured],
  ['sync-rcu-ttl-days', 'repo', honoured],

  // RepoConfig: OpenPGP keys.
  ['sync-openpgp-key-path', 'repo', honoured],
  ['sync-openpgp-key-package', 'repo', ignored('reposnap knows no installed packages, so it cannot say when the key package has an update')],
  ['sync-openpgp-keyserver', 'repo', ignored(NO_KEY_FETCH)],
  ['sync-openpgp-key-refresh', 'repo', ignored(NO_KEY_FETCH)],
  ['sync-openpgp-key-refresh-retry-count', 'repo', ignored(NO_KEY_FETCH)],
  ['sync-openpgp-key-refresh-retry-delay-exp-base', 'repo', ignored(NO_KEY_FETCH)],
  ['sync-openpgp-key-refresh-retry-delay-max', 'repo', ignored(NO_KEY_FETCH)],
  ['sync-openpgp-key-refresh-retry-delay-mult', 'repo', ignored(NO_KEY_FETCH)],
  ['sync-openpgp-key-refresh-retry-overall-timeout', 'repo', ignored(NO_KEY_FETCH)],

  // The rsync module.
  ['sync-rsync-extra-opts', 'rsync', honoured],
  ['sync-rsync-verify-metamanifest', 'rsync', honoured],
  ['sync-rsync-verify-jobs', 'rsync', honoured],
  ['sync-rsync-verify-max-age', 'rsync', honoured],
  ['sync-rsync-vcs-ignore', 'rsync', ignored('reposnap does not look for VCS directories in the location, so it never stops for one')],

  // The git module. reposnap fetches into a bare mirror of its own and never
  // runs git clone or git pull in the location.
  ['sync-git-verify-commit-signature', 'git', honoured],
  // Portage fails the sync when metadata/timestamp.chk is older than this:
  // ignoring it would publish a stale tree Portage refuses.
  ['sync-git-verify-max-age-days', 'git', refused('reposnap does not check the age of a git tree; a stale tree Portage refuses would be published')],
  // Portage's later pulls follow the branch the clone chose, so an option such
  // as --branch decides which tree is synced; dropping it would sync another.
  ['sync-git-clone-extra-opts', 'git', refused('reposnap runs no git clone, so options such as --branch would be lost (use sync-git-branch)')],
  // Options to git fetch tune the transfer; the tree is still the branch's.
  ['sync-git-pull-extra-opts', 'git', ignored('reposnap runs git fetch into a mirror of its own and passes it no extra options')],
  ['sync-git-env', 'git', ignored(GIT_ENV)],
  ['sync-git-clone-env', 'git', ignored(GIT_ENV)],
  ['sync-git-pull-env', 'git', ignored(GIT_ENV)],

  // The webrsync module.
  ['sync-webrsync-verify-signature', 'webrsync', honoured],
  ['sync-webrsync-delta', 'webrsync', ignored('reposnap fetches whole snapshots; unchanged files are shared with the previous snapshot anyway')],
  ['sync-webrsync-keep-snapshots', 'webrsync', ignored('reposnap keeps no snapshot archive once it is unpacked (only an unfinished download, to resume it)')],

  // Modules for sync types reposnap refuses: a section with one of these
  // sync-types is an error anyway, and on any other sync-type Portage itself
  // ignores them.
  ['sync-mercurial-env', 'mercurial', ignored(NO_MERCURIAL)],
  ['sync-mercurial-clone-env', 'mercurial', ignored(NO_MERCURIAL)],
  ['sync-mercurial-clone-extra-opts', 'mercurial', ignored(NO_MERCURIAL)],
  ['sync-mercurial-pull-env', 'mercurial', ignored(NO_MERCURIAL)],
  ['sync-mercurial-pull-extra-opts', 'mercurial', ignored(NO_MERCURIAL)],
  ['sync-cvs-repo', 'cvs', ignored('only for sync-type = cvs, which reposnap does not sync')],
];

/** Every key Portage's repos.conf knows, with what reposnap does with it. Keys reposnap adds (sync-rcu-backend, sync-verify-command, sync-tarball-*, ...) are not here. */
export const PORTAGE_KEYS: ReadonlyMap<string, KeyFate> = new Map(ENTRIES.map(([key, , fate]) => [key, fate]));

/** Where each key comes from in Portage: 'repo' (RepoConfig) or the sync module name. */
export const PORTAGE_KEY_ORIGIN: ReadonlyMap<string, string> = new Map(ENTRIES.map(([key, origin]) => [key, origin]));
