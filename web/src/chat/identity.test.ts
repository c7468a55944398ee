import { describe, expect, it } from "vitest";
import { sessionFromUrl } from "./identity";

describe("sessionFromUrl", () => {
  it("takes an id that starts with a letter or digit", () => {
    expect(sessionFromUrl("?session=0192-abc")).toBe("0192-abc");
    expect(sessionFromUrl("?session=s.1:x_y")).toBe("s.1:x_y");
  });

  it("refuses ids a URL would resolve as a path (issue 17, finding 14)", () => {
    for (const id of [".", "..", "-x", "_x", ":x", ""]) {
      expect(sessionFromUrl(`?session=${encodeURIComponent(id)}`)).toBeNull();
    }
  });
});
