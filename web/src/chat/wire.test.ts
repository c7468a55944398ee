// @vitest-environment node
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { compile } from "json-schema-to-typescript";
import { expect, it } from "vitest";

const SCHEMA = fileURLToPath(new URL("../../../docs/protocol.schema.json", import.meta.url));
const GENERATED = fileURLToPath(new URL("./wire.ts", import.meta.url));

it("wire.ts is what the checked-in schema generates (run `make schema` if not)", async () => {
  const schema = JSON.parse(readFileSync(SCHEMA, "utf8"));
  // The options of `npm run wire-types` (package.json), which `make schema` runs.
  const expected = await compile(schema, "ChatRelayWire", {
    additionalProperties: false,
    unknownAny: true,
  });
  expect(readFileSync(GENERATED, "utf8")).toBe(expected);
});
