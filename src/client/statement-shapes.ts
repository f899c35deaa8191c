// Which query shape each of a client's prepared statements and portals runs, so an Execute finds its digest
// without parsing: the shape is looked up at Parse, carried by Bind to the portal, and read at Execute.
import type { Shape } from '../sql/shapes.ts';

/** Names a client may have before the oldest are forgotten (their statements then go untracked). */
const MAX_NAMED = 10_000;

export class StatementShapes {
  private unnamedStatement: Shape | null = null;
  private readonly statements = new Map<string, Shape>();
  private unnamedPortal: Shape | null = null;
  private readonly portals = new Map<string, Shape>();

  /** Parse: msg is the whole message; `shape` is its query's. */
  parsed(msg: Buffer, shape: Shape): void {
    if (msg[5] === 0) {
      this.unnamedStatement = shape;
      return;
    }
    const name = msg.toString('utf8', 5, msg.indexOf(0, 5));
    if (this.statements.size >= MAX_NAMED && !this.statements.has(name)) this.statements.clear();
    this.statements.set(name, shape);
  }

  /** Bind: the portal runs the statement's shape, which is returned. Empty names (the usual case) cost no string. */
  bound(msg: Buffer): Shape | null {
    const portalEnd = msg.indexOf(0, 5);
    if (portalEnd < 0) return null;
    const stmtEnd = msg.indexOf(0, portalEnd + 1);
    if (stmtEnd < 0) return null;
    const shape = stmtEnd === portalEnd + 1 ? this.unnamedStatement : (this.statements.get(msg.toString('utf8', portalEnd + 1, stmtEnd)) ?? null);
    if (portalEnd === 5) {
      this.unnamedPortal = shape;
      return shape;
    }
    const portal = msg.toString('utf8', 5, portalEnd);
    if (shape === null) this.portals.delete(portal);
    else {
      if (this.portals.size >= MAX_NAMED && !this.portals.has(portal)) this.portals.clear();
      this.portals.set(portal, shape);
    }
    return shape;
  }

  /** Execute: the shape its portal runs, or null. */
  executing(msg: Buffer): Shape | null {
    if (msg[5] === 0) return this.unnamedPortal;
    if (this.portals.size === 0) return null;
    return this.portals.get(msg.toString('utf8', 5, msg.indexOf(0, 5))) ?? null;
  }

  /** Close of a statement ('S') or portal ('P'). */
  closed(msg: Buffer): void {
    const named = msg[6] !== 0;
    const name = named ? msg.toString('utf8', 6, msg.indexOf(0, 6)) : '';
    if (msg[5] === 0x53) {
      if (named) this.statements.delete(name);
      else this.unnamedStatement = null;
    } else if (named) this.portals.delete(name);
    else this.unnamedPortal = null;
  }

  /** DISCARD ALL / DEALLOCATE ALL. */
  forgetStatements(): void {
    this.statements.clear();
  }
}
