import { drbdVmSuite } from './drbd-vms.js';

drbdVmSuite('9');
