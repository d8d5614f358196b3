export { toDot } from './dot.js';
export { toMermaid } from './mermaid.js';
export { type Diagram, type DiagramEdge, type DiagramState, diagramOf, guardLabel } from './model.js';
export { toSvg } from './svg.js';
