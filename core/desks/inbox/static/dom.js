// Building DOM without HTML strings: every text goes in as a text node, so user data is never markup.

/**
 * h("li", {class: "row", onclick: fn, dataset: {id: "7"}}, "text", child) -> HTMLLIElement.
 * Strings among the children become text nodes; null, undefined and false children are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  el.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return el;
}

export const $ = (id) => document.getElementById(id);

/** Show exactly one of `elements` (the others get `hidden`). */
export function showOnly(shown, ...elements) {
  for (const el of elements) el.hidden = el !== shown;
}

/** A picture file as standard base64 and its type, scaled down so its longest side is at most `edge`. */
export async function pictureBase64(file, edge = 1600) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, edge / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return { data: btoa(binary), type: "image/jpeg" };
}
