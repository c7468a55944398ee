import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import AdminPage from "./AdminPage";
import "../styles.css";

// A page of its own (admin.html, served at /admin): the chat page's bundle does not carry it.
createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <AdminPage />
  </StrictMode>,
);
