/** A Kubernetes object as parsed JSON or YAML. */
export type K8sObject = Record<string, unknown>;

/** Kinds whose pod template the injector rewrites, with the path to that template. */
export const TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

/**
 * The pod template of a workload (the object itself for a Pod), or undefined
 * for other kinds and for workloads without one.
 */
export function findPodTemplate(object: K8sObject): K8sObject | undefined {
  const path = typeof object.kind === 'string' ? TEMPLATE_PATHS[object.kind] : undefined;
  if (!path) return undefined;
  let node: unknown = object;
  for (const step of path) {
    node = isObject(node) ? node[step] : undefined;
  }
  return isObject(node) ? node : undefined;
}

/** Returns a copy of `object` with its pod template replaced by `template`. */
export function withPodTemplate(object: K8sObject, template: K8sObject): K8sObject {
  const path = TEMPLATE_PATHS[String(object.kind)] ?? [];
  if (path.length === 0) return template;
  const copy = structuredClone(object);
  let node = copy;
  for (const step of path.slice(0, -1)) node = node[step] as K8sObject;
  node[path[path.length - 1] as string] = template;
  return copy;
}

/** Whether a value is a plain JSON object. */
export function isObject(value: unknown): value is K8sObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
