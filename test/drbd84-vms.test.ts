import { drbdVmSuite } from './drbd-vms.js';

drbdVmSuite('8.4');
