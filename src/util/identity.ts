/**
 * Who this process is. Root can set owners and must read other users' trees
 * with care; everyone else copies what they can.
 */
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
