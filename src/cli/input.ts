import { InstanceName, NodeName, type ProtocolInput } from '../../machines/index.js';
import { type Fault, parseFault } from '../sim/index.js';
import { UsageError } from './errors.js';
import type { Values } from './options.js';

/** The command line's values as a run's input: names checked, faults parsed; bad ones are usage errors. */

export function faultsOf(values: Values): Fault[] {
  try {
    return [
      ...(values.fail ?? []).map((f) => parseFault(f, 'error')),
      ...(values.hang ?? []).map((f) => parseFault(f, 'hang')),
      ...(values.lose ?? []).map((f) => parseFault(f, 'lost')),
    ];
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function valid<T>(
  schema: {
    safeParse(
      v: unknown,
    ): { success: true; data: T } | { success: false; error: { issues: { message: string }[] } };
  },
  value: unknown,
  what: string,
): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new UsageError(`bad ${what} '${String(value)}': ${r.error.issues[0]?.message}`);
  return r.data;
}

export const instanceName = (name: string) => valid(InstanceName, name, 'instance name');
export const nodeName = (name: string) => valid(NodeName, name, 'node name');

export function inputOf(instance: string, values: Values): ProtocolInput {
  const input: ProtocolInput = { instance: instanceName(instance) };
  if (values['non-live'] === true) input.mode = 'non-live';
  if (values.target !== undefined) input.targetNode = valid(NodeName, values.target, 'target node');
  if (values['no-runtime-changes'] === true) input.allowRuntimeChanges = false;
  return input;
}
