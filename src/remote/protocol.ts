import { z } from 'zod';

/**
 * Effects over HTTP, between the one process that owns a world (a shared simulated cluster) and the
 * workers that act on it. One POST per effect call; the answer or the failure in the body.
 */
export const EFFECT_PATH = '/effects/';
/** Which durable step a call belongs to, and which worker sent it (see runtime/step.ts). */
export const STEP_HEADER = 'x-drbd-migrate-step';
export const RUN_HEADER = 'x-drbd-migrate-run';
export const WORKER_HEADER = 'x-drbd-migrate-worker';
/**
 * An operator abort waiting for a call in flight (Effects' `hurry`) crosses as a second request: the
 * call carries an id the caller chose, and POST HURRY_PATH + id hurries it.
 */
export const CALL_HEADER = 'x-drbd-migrate-call';
export const HURRY_PATH = '/hurry/';

/**
 * The instance leases of everything that acts on this world (safety rule 9 across runtimes): POST
 * LEASE_PATH + 'acquire' or 'release' with a LeaseRequest; the answer is a LeaseAnswer.
 */
export const LEASE_PATH = '/lease/';
export const LeaseRequest = z.object({
  instance: z.string().min(1),
  holder: z.string().min(1),
  ttlMs: z.number().int().positive().max(3_600_000).default(30_000),
});

export const Answer = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), answer: z.unknown().optional() }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);
export type Answer = z.infer<typeof Answer>;

/** What the serving side says of itself (GET /): the cluster's name, so workers and clients agree on keys. */
export const About = z.object({ cluster: z.string().min(1), effects: z.array(z.string()) });
export type About = z.infer<typeof About>;
