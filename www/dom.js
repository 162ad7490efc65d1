// The DOM helpers the page's modules and the <ddpm-demo> element share.

// The element with `id`, in the document or in `root` (a demo's shadow root).
export const $ = (id, root = document) => root.getElementById(id);

// A new `tag` element with `props` set as properties (id, className, textContent, …) and
// `attributes` as attributes (aria-label, role, part, …).
export function el(tag, props = {}, attributes = {}) {
  const element = Object.assign(document.createElement(tag), props);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  return element;
}

// Offers `blob` to the reader as a file named `name`, as a download link does.
export function saveFile(blob, name) {
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}
