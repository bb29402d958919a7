/**
 * Copy backend: every clone is a full copy. The fallback that works on any
 * filesystem, including where hardlinks are impossible or forbidden
 * (sync-allow-hardlinks = no).
 */
import { treeBackend } from './tree-backend.js';

export const copyBackend = treeBackend('copy', 'copy', () => Promise.resolve(true));
