import { z } from 'zod';

/**
 * Names that end up in node-side commands (drbdsetup arguments, QMP socket paths, ssh targets) are
 * restricted to a character set that needs no quoting, so a hostile or mistyped name is refused here,
 * before any node is touched, instead of depending on every driver to quote correctly.
 */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const SAFE_NAME_HINT = 'must be 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit';

export const NodeName = z.string().regex(SAFE_NAME, `node name ${SAFE_NAME_HINT}`);
export const InstanceName = z.string().regex(SAFE_NAME, `instance name ${SAFE_NAME_HINT}`);
export const ResourceName = z.string().regex(SAFE_NAME, `DRBD resource name ${SAFE_NAME_HINT}`);
/** DRBD minors are limited to 2^20 by the kernel module. */
export const Minor = z.number().int().min(0).max(1_048_575);
