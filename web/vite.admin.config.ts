import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The cluster view (/admin) is built on its own, after the chat page (`npm run build`), into
// the same folder: it shares no chunk with `/`, so the chat page's JavaScript does not change
// by one byte for it, and its charts (uPlot) load only on /admin.
const OUT_DIR = fileURLToPath(new URL("../src/chatrelay/gateway/static", import.meta.url));

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: OUT_DIR,
    emptyOutDir: false,
    assetsDir: "assets",
    sourcemap: false,
    rollupOptions: { input: { admin: fileURLToPath(new URL("./admin.html", import.meta.url)) } },
  },
});
