import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Which durable step an effect call belongs to (a Restate invocation and its step's journal name),
 * for effects that cross a process boundary: the far side can tell a step asked again after a
 * worker died from a new one. Absent outside a durable runtime.
 */
export interface StepId {
  run: string;
  step: string;
}

const current = new AsyncLocalStorage<StepId>();

export const withStep = <T>(id: StepId, work: () => T): T => current.run(id, work);

export const currentStep = (): StepId | undefined => current.getStore();
