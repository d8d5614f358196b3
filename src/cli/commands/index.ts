import type { Command } from '../command.js';
import { balance } from './balance.js';
import { check } from './check.js';
import { demo } from './demo.js';
import { diagram } from './diagram.js';
import { evacuate } from './evacuate.js';
import { explain } from './explain.js';
import { failover } from './failover.js';
import { init } from './init.js';
import { migrate } from './migrate.js';
import { paths } from './paths.js';
import { plan } from './plan.js';
import { power } from './power.js';
import { rejoin } from './rejoin.js';
import { replaceSecondary } from './replaceSecondary.js';
import { replaceThirdCopy } from './replaceThirdCopy.js';
import { resume } from './resume.js';
import { serve } from './serve.js';
import { show } from './show.js';
import { status } from './status.js';
import { undrain } from './undrain.js';
import { worker } from './worker.js';

/** Every command, in the order the help lists them. */
export const COMMANDS: readonly Command[] = [
  demo,
  migrate,
  plan,
  check,
  failover,
  evacuate,
  undrain,
  rejoin,
  replaceSecondary,
  replaceThirdCopy,
  resume,
  init,
  show,
  power,
  diagram,
  explain,
  paths,
  status,
  serve,
  worker,
  balance,
];
