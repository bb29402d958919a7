// The parts of fs-native-extensions reposnap uses (the package ships no types).
declare module 'fs-native-extensions' {
  interface LockOptions {
    shared?: boolean;
  }
  const fsx: {
    tryLock(fd: number, opts?: LockOptions): boolean;
    waitForLock(fd: number, opts?: LockOptions): Promise<void>;
    unlock(fd: number): void;
    /** renameat2(RENAME_EXCHANGE): swap two paths atomically. */
    swap(from: string, to: string): Promise<void>;
  };
  export default fsx;
}
