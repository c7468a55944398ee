/// <reference types="vitest/config" />
import { cpSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin } from "vite";

// The gateway serves this folder at "/" (and index.html for unknown non-API paths).
const OUT_DIR = fileURLToPath(new URL("../src/chatrelay/gateway/static", import.meta.url));
// Where `npm run dev` forwards API and WebSocket traffic: a `chatrelay serve` on its default port.
const BACKEND = process.env.CHATRELAY_BACKEND ?? "http://127.0.0.1:8080";

// The gateway's /docs page runs Swagger UI from these copies (pinned in package.json),
// never from a CDN; public/docs/swagger-init.js starts it.
const SWAGGER_UI_DIR = fileURLToPath(new URL("./node_modules/swagger-ui-dist/", import.meta.url));
const SWAGGER_UI_FILES = ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"];

function apiDocsAssets(): Plugin {
  return {
    name: "chatrelay-api-docs-assets",
    apply: "build",
    writeBundle() {
      mkdirSync(`${OUT_DIR}/docs`, { recursive: true });
      for (const file of SWAGGER_UI_FILES) cpSync(`${SWAGGER_UI_DIR}${file}`, `${OUT_DIR}/docs/${file}`);
    },
  };
}

export default defineConfig({
  plugins: [react(), apiDocsAssets()],
  base: "/",
  build: {
    outDir: OUT_DIR,
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
  },
  server: {
    proxy: {
      "/ws": { target: BACKEND, ws: true, changeOrigin: true },
      "/api": { target: BACKEND, changeOrigin: true },
      "/health": { target: BACKEND, changeOrigin: true },
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
