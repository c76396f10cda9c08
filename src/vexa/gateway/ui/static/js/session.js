// The keys live in this tab's sessionStorage only: gone when the tab closes, never in a cookie or URL.

const USER_KEY = "vexa.apiKey";
const ADMIN_KEY = "vexa.adminKey";

export const session = {
  get apiKey() { return sessionStorage.getItem(USER_KEY); },
  set apiKey(value) { value ? sessionStorage.setItem(USER_KEY, value) : sessionStorage.removeItem(USER_KEY); },
  get adminKey() { return sessionStorage.getItem(ADMIN_KEY); },
  set adminKey(value) { value ? sessionStorage.setItem(ADMIN_KEY, value) : sessionStorage.removeItem(ADMIN_KEY); },
  signOut() {
    sessionStorage.removeItem(USER_KEY);
    sessionStorage.removeItem(ADMIN_KEY);
  },
};
