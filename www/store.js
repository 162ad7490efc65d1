// Weights trained in the tab, kept in IndexedDB so they survive a reload.

const DB = "ddpm-web";
const STORE = "models";

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function run(mode, action) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = tx.onabort = () => reject(tx.error || new Error("the browser refused to store the model"));
    });
  } finally {
    db.close();
  }
}

// { bytes: Uint8Array, name, description, savedAt } or undefined.
export const loadModel = (key) => run("readonly", (s) => s.get(key)).catch(() => undefined);
export const saveModel = (key, record) => run("readwrite", (s) => s.put(record, key));
