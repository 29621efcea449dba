/* memory-store: the user's page. Plain JavaScript against the v1 API, same origin only.
 *
 * Privacy rules this file keeps: the token lives in sessionStorage only; memory contents are
 * put into the DOM with textContent (never innerHTML), never into the page URL, and nothing
 * is ever written to the console.
 */
'use strict';

(() => {
  const TOKEN_KEY = 'memory-store.token';
  const PAGE_LIMIT = 100;
  const MAX_PAGES = 200;

  // Every action the access log can show, in words (the trail's names are for machines).
  const ACTION_LABELS = {
    'memory.read': 'Read one memory',
    'memory.list': 'Listed memories',
    'memory.search': 'Searched memories',
    'memory.history': 'Looked at the earlier versions of a memory',
    'memory.export': 'Exported everything',
    'memory.context': 'Fetched context',
  };

  function actionLabel(action) {
    if (ACTION_LABELS[action]) return ACTION_LABELS[action];
    const words = String(action).replace(/[._]/g, ' ');
    return words.charAt(0).toUpperCase() + words.slice(1);
  }
  const PREVIOUS_LABELS = { granted: 'Granted', withdrawn: 'Withdrawn', default: 'Default' };

  const state = {
    token: null,
    userId: null,
    purposes: [],
    categories: [],
    sensitive: new Set(),
    memories: [],
    query: '',
    consents: new Map(),
    memoryEnabled: true,
    consentCells: new Map(),
    purposeSwitches: new Map(),
    historyCursor: null,
    accessCursor: null,
    accessItems: [],
    exportUrl: null,
    receiptUrl: null,
    view: 'memories',
  };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- helpers

  function el(tag, options = {}, children = []) {
    const node = document.createElement(tag);
    if (options.className) node.className = options.className;
    if (options.text !== undefined) node.textContent = options.text;
    if (options.attrs) {
      for (const [name, value] of Object.entries(options.attrs)) node.setAttribute(name, value);
    }
    for (const child of children) {
      node.append(child);
    }
    return node;
  }

  function humanize(name) {
    if (name === '*') return 'All categories';
    const words = String(name).replace(/_/g, ' ');
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

  function timeElement(iso, withTime = true) {
    const date = new Date(iso);
    const node = el('time', { attrs: { datetime: iso } });
    node.textContent = Number.isNaN(date.getTime())
      ? String(iso)
      : (withTime ? dateTimeFormat : dateFormat).format(date);
    return node;
  }

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  function localDateValue(date) {
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  }

  function localMidnightIso(value) {
    const [year, month, day] = value.split('-').map(Number);
    return new Date(year, month - 1, day).toISOString();
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  let uid = 0;
  function nextId(prefix) {
    uid += 1;
    return `${prefix}-${uid}`;
  }

  // ---------------------------------------------------------------- status and errors

  function setStatus(message) {
    const region = $('status');
    region.textContent = '';
    // A fresh text node after clearing makes screen readers announce repeated messages.
    window.setTimeout(() => {
      region.textContent = message;
    }, 30);
  }

  function showError(message) {
    const box = $('error');
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    const box = $('error');
    box.textContent = '';
    box.hidden = true;
  }

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `The request failed (HTTP ${status})`);
      this.name = 'ApiError';
      this.status = status;
      this.problem = problem || {};
    }
  }

  function describe(error) {
    if (error instanceof ApiError) return error.message;
    return 'The service could not be reached. Check your connection and try again.';
  }

  /** Why signing in failed, in plain words rather than the API's. */
  function signInProblem(error) {
    if (!(error instanceof ApiError)) return describe(error);
    if (error.status === 401) {
      return 'This token was not accepted. It may be mistyped, or it was revoked or has expired: ' +
        'ask whoever runs memory-store for a new one.';
    }
    if (error.status === 403) {
      return 'This token is not a personal one (it is for an assistant or an operator). ' +
        'Sign in with the token made for you.';
    }
    if (error.status === 429) return 'Too many attempts in a short time. Wait a minute, then try again.';
    if (error.status >= 500) return 'The service is not available right now. Try again in a few minutes.';
    return describe(error);
  }

  /** Report a failed request; a refused token ends the session. */
  function report(error, what) {
    if (error instanceof ApiError && error.status === 401 && state.token) {
      endSession();
      showError(`Your session has ended: ${describe(error)} Sign in again.`);
      return;
    }
    showError(what ? `${what}: ${describe(error)}` : describe(error));
  }

  // ---------------------------------------------------------------- the API

  async function api(method, path, { body, headers } = {}) {
    const sent = {
      Accept: 'application/json, application/problem+json',
      Authorization: `Bearer ${state.token}`,
      ...headers,
    };
    const init = { method, headers: sent, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
    if (body !== undefined) {
      sent['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 204) return null;
    let data = null;
    const text = await response.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_ignored) {
        data = null;
      }
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function query(params) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && value !== '') search.set(name, String(value));
    }
    const text = search.toString();
    return text ? `?${text}` : '';
  }

  // ---------------------------------------------------------------- confirmation dialog

  function confirmAction({ title, message, confirmLabel }) {
    const dialog = $('confirm-dialog');
    const opener = document.activeElement;
    $('confirm-title').textContent = title;
    $('confirm-message').textContent = message;
    $('confirm-ok').textContent = confirmLabel;
    dialog.returnValue = '';
    return new Promise((resolve) => {
      const onClose = () => {
        dialog.removeEventListener('close', onClose);
        const confirmed = dialog.returnValue === 'confirm';
        if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
        resolve(confirmed);
      };
      dialog.addEventListener('close', onClose);
      dialog.showModal();
      $('confirm-cancel').focus();
    });
  }

  // ---------------------------------------------------------------- views and session

  const VIEWS = ['signin', 'receipt', 'memories', 'consents', 'access', 'data'];

  function showView(name, { focus = false } = {}) {
    for (const view of VIEWS) {
      $(`view-${view}`).hidden = view !== name;
    }
    for (const button of document.querySelectorAll('.nav-button')) {
      if (button.dataset.view === name) button.setAttribute('aria-current', 'page');
      else button.removeAttribute('aria-current');
    }
    if (['memories', 'consents', 'access', 'data'].includes(name)) state.view = name;
    if (focus) {
      const heading = $(`view-${name}`).querySelector('h1');
      if (heading) heading.focus();
    }
  }

  async function openView(name) {
    clearError();
    $('status').textContent = '';
    showView(name, { focus: true });
    try {
      if (name === 'memories') await loadMemories();
      else if (name === 'consents') await Promise.all([loadConsents(), loadConsentHistory(false)]);
      else if (name === 'access') await loadAccessLog(false);
    } catch (error) {
      report(error);
    }
  }

  function setSignedInChrome(signedIn) {
    $('session').hidden = !signedIn;
    $('views-nav').hidden = !signedIn;
    if (!signedIn) $('paused-banner').hidden = true;
  }

  function updateSessionLabel() {
    $('session-user').textContent = state.userId ? `Signed in as ${state.userId}` : 'Signed in';
  }

  function clearData() {
    state.userId = null;
    state.memories = [];
    state.query = '';
    state.consents = new Map();
    state.memoryEnabled = true;
    state.consentCells = new Map();
    state.purposeSwitches = new Map();
    state.historyCursor = null;
    state.accessCursor = null;
    state.accessItems = [];
    if (state.exportUrl) URL.revokeObjectURL(state.exportUrl);
    state.exportUrl = null;
    $('memory-groups').replaceChildren();
    $('memory-groups').removeAttribute('data-loaded');
    $('memories-summary').textContent = '';
    $('search-input').value = '';
    $('consent-purposes').replaceChildren();
    $('consent-history-body').replaceChildren();
    $('access-body').replaceChildren();
    $('export-link').setAttribute('href', '#');
    $('export-ready').hidden = true;
    $('receipt').replaceChildren();
    if (state.receiptUrl) URL.revokeObjectURL(state.receiptUrl);
    state.receiptUrl = null;
    $('receipt-link').setAttribute('href', '#');
  }

  /** Forget the token and everything shown; back to the sign-in form. */
  function endSession() {
    state.token = null;
    try {
      window.sessionStorage.removeItem(TOKEN_KEY);
    } catch (_ignored) {
      /* storage unavailable: nothing to clear */
    }
    clearData();
    setSignedInChrome(false);
    showView('signin');
  }

  async function startSession(token, { remember }) {
    state.token = token;
    let settings;
    try {
      const me = await api('GET', '/v1/me');
      state.userId = me.user_id;
      settings = await api('GET', '/v1/me/settings');
      await loadCatalogue();
    } catch (error) {
      state.token = null;
      throw error;
    }
    if (remember) {
      try {
        window.sessionStorage.setItem(TOKEN_KEY, token);
      } catch (_ignored) {
        /* storage unavailable: the session lasts as long as the page */
      }
    }
    applySettings(settings);
    setSignedInChrome(true);
    updateSessionLabel();
    showView('memories');
    await loadMemories();
  }

  async function onSignIn(event) {
    event.preventDefault();
    clearError();
    const input = $('token-input');
    const token = input.value.trim();
    if (!token) {
      showError('Paste your access token first.');
      input.focus();
      return;
    }
    const button = $('signin-button');
    button.disabled = true;
    try {
      await startSession(token, { remember: true });
      input.value = '';
      setStatus('Signed in.');
      $('memories-title').focus();
    } catch (error) {
      showError(`Sign-in failed. ${signInProblem(error)}`);
      input.focus();
    } finally {
      button.disabled = false;
    }
  }

  function onSignOut() {
    endSession();
    clearError();
    setStatus('Signed out. Your token is no longer kept in this tab.');
    $('token-input').focus();
  }

  // ---------------------------------------------------------------- catalogue and settings

  async function loadCatalogue() {
    const overview = await api('GET', '/v1/me/consents');
    applyCatalogue(overview);
    return overview;
  }

  function applyCatalogue(overview) {
    const purposes = [];
    const categories = [];
    const sensitive = new Set();
    for (const item of overview.items) {
      if (!purposes.includes(item.purpose)) purposes.push(item.purpose);
      if (!categories.includes(item.category)) categories.push(item.category);
      if (item.sensitive) sensitive.add(item.category);
    }
    state.purposes = purposes;
    state.categories = categories;
    state.sensitive = sensitive;
    state.consents = new Map(overview.items.map((item) => [`${item.purpose}/${item.category}`, item]));
  }

  function applySettings(settings) {
    const enabled = Boolean(settings.memory_enabled);
    state.memoryEnabled = enabled;
    $('memory-enabled').checked = enabled;
    $('memory-enabled-state').textContent = enabled ? 'On' : 'Paused';
    $('paused-banner').hidden = enabled;
  }

  async function onMemoryEnabledChange(event) {
    const input = event.target;
    const wanted = input.checked;
    clearError();
    input.disabled = true;
    try {
      const settings = await api('PATCH', '/v1/me/settings', { body: { memory_enabled: wanted } });
      applySettings(settings);
      setStatus(
        settings.memory_enabled
          ? 'Memory is on again: the assistant may use your memories as your consent allows.'
          : 'Memory is paused: the assistant can neither read nor write your memories.',
      );
    } catch (error) {
      input.checked = !wanted;
      report(error, 'The setting was not changed');
    } finally {
      input.disabled = false;
    }
  }

  // ---------------------------------------------------------------- memories

  async function loadMemories() {
    const items = [];
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const result = await api('GET', `/v1/me/memories${query({ limit: PAGE_LIMIT, q: state.query, cursor })}`);
      items.push(...result.items);
      cursor = result.next_cursor;
      if (!cursor) break;
    }
    state.memories = items;
    renderMemories();
  }

  function categoryOrder() {
    const order = [...state.categories];
    for (const memory of state.memories) {
      if (!order.includes(memory.category)) order.push(memory.category);
    }
    return order;
  }

  function sensitiveBadge() {
    return el('span', { className: 'badge badge-sensitive', text: 'Sensitive' });
  }

  function renderMemories() {
    const container = $('memory-groups');
    container.replaceChildren();
    const groups = new Map();
    for (const memory of state.memories) {
      if (!groups.has(memory.category)) groups.set(memory.category, []);
      groups.get(memory.category).push(memory);
    }
    const count = state.memories.length;
    const summary = $('memories-summary');
    // The groups' headings count their memories: a sentence says only what they cannot.
    if (state.query) {
      summary.textContent = count
        ? `${plural(count, 'memory matches', 'memories match')} your search, in ${plural(groups.size, 'category', 'categories')}.`
        : 'No memory matches your search.';
    } else {
      summary.textContent = count ? '' : 'Nothing is kept about you.';
    }
    summary.hidden = summary.textContent === '';
    container.dataset.loaded = 'true';
    for (const category of categoryOrder()) {
      const memories = groups.get(category);
      if (!memories) continue;
      container.append(renderGroup(category, memories));
    }
  }

  function renderGroup(category, memories) {
    const headingId = nextId('group');
    const section = el('section', {
      className: 'memory-group',
      attrs: { 'aria-labelledby': headingId, 'data-category': category },
    });
    const heading = el('h2', { attrs: { id: headingId } }, [humanize(category)]);
    if (state.sensitive.has(category)) {
      heading.append(' ', sensitiveBadge());
    }
    heading.append(' ', el('span', { className: 'count', text: `(${memories.length})` }));
    const forget = el('button', {
      className: 'button-danger button-small forget-category',
      text: `Forget all of ${humanize(category)}`,
      attrs: { type: 'button', 'data-category': category },
    });
    forget.addEventListener('click', () => onForgetCategory(category));
    const header = el('div', { className: 'group-header' }, [heading, forget]);
    const list = el('ul', { className: 'memory-list' });
    for (const memory of memories) list.append(renderMemory(memory));
    section.append(header, list);
    return section;
  }

  function renderMemory(memory) {
    const item = $('memory-template').content.firstElementChild.cloneNode(true);
    item.dataset.memoryId = memory.id;
    const contentId = nextId('memory-content');
    const content = item.querySelector('.memory-content');
    content.id = contentId;
    content.textContent = memory.content;
    item.dataset.version = String(memory.version);
    item.querySelector('.meta-created').append(timeElement(memory.created_at, false));
    item.querySelector('.meta-expires').append(timeElement(memory.expires_at, false));
    item.querySelector('.meta-edited').hidden = memory.version === 1;
    const unused = unusedReason(memory.category);
    const sign = item.querySelector('.meta-unused');
    if (unused) {
      sign.append(el('span', { className: 'badge badge-unused', text: 'Not used now' }), ` ${unused}`);
    } else {
      sign.remove();
    }
    const edit = item.querySelector('.edit-button');
    const history = item.querySelector('.history-button');
    const forget = item.querySelector('.forget-button');
    const historyBox = item.querySelector('.memory-history');
    historyBox.id = nextId('history');
    history.setAttribute('aria-controls', historyBox.id);
    for (const button of [edit, history, forget]) button.setAttribute('aria-describedby', contentId);
    edit.addEventListener('click', () => openEditor(item, memory));
    history.addEventListener('click', () => toggleHistory(item, memory));
    forget.addEventListener('click', () => onForgetMemory(memory));
    return item;
  }

  /** Why the assistant may not use memories of `category` right now, or '' when some purpose
   * may. Read from the consent state and the pause switch this page last loaded. */
  function unusedReason(category) {
    if (!state.memoryEnabled) return 'Memory is paused.';
    const allowed = state.purposes.filter((purpose) => {
      const item = state.consents.get(`${purpose}/${category}`);
      return item && item.granted;
    });
    if (allowed.length) return '';
    return state.sensitive.has(category)
      ? `${humanize(category)} is sensitive: allow it for a purpose under Consent to use it.`
      : `You have not allowed any purpose to use ${humanize(category)}.`;
  }

  function findItem(memoryId) {
    for (const item of document.querySelectorAll('#memory-groups li.memory')) {
      if (item.dataset.memoryId === memoryId) return item;
    }
    return null;
  }

  // ---- edit in place

  function openEditor(item, memory) {
    clearError();
    const card = item.querySelector('.memory-card');
    if (card.querySelector('.edit-form')) return;
    const form = $('edit-template').content.firstElementChild.cloneNode(true);
    const textarea = form.querySelector('.edit-content');
    const select = form.querySelector('.edit-category');
    const date = form.querySelector('.edit-expires');
    const help = form.querySelector('.edit-expires-help');
    for (const [control, labelClass, prefix] of [
      [textarea, '.edit-content-label', 'edit-content'],
      [select, '.edit-category-label', 'edit-category'],
      [date, '.edit-expires-label', 'edit-expires'],
    ]) {
      control.id = nextId(prefix);
      form.querySelector(labelClass).setAttribute('for', control.id);
    }
    help.id = nextId('edit-help');
    date.setAttribute('aria-describedby', help.id);
    textarea.value = memory.content;
    for (const category of categoryOrder()) {
      const label = state.sensitive.has(category) ? `${humanize(category)} (sensitive)` : humanize(category);
      select.append(el('option', { text: label, attrs: { value: category } }));
    }
    select.value = memory.category;
    const currentDate = localDateValue(new Date(memory.expires_at));
    const tomorrow = new Date();
    tomorrow.setDate(tomorrow.getDate() + 1);
    date.value = currentDate;
    date.max = currentDate;
    date.min = localDateValue(tomorrow);

    for (const part of card.querySelectorAll('.memory-row, .memory-history')) {
      part.hidden = true;
    }
    card.classList.add('editing');
    card.prepend(form);

    const close = () => {
      form.remove();
      card.classList.remove('editing');
      card.querySelector('.memory-row').hidden = false;
      card.querySelector('.history-button').setAttribute('aria-expanded', 'false');
      card.querySelector('.edit-button').focus();
    };
    form.querySelector('.cancel-button').addEventListener('click', close);
    form.querySelector('.reload-button').addEventListener('click', async () => {
      try {
        await loadMemories();
        setStatus('Reloaded: you now see the current version.');
        const fresh = findItem(memory.id);
        if (fresh) fresh.querySelector('.edit-button').focus();
      } catch (error) {
        report(error);
      }
    });
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      saveEdit(form, memory, { textarea, select, date, currentDate, close });
    });
    form.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        close();
      }
    });
    textarea.focus();
  }

  async function saveEdit(form, memory, { textarea, select, date, currentDate, close }) {
    const errorBox = form.querySelector('.edit-error');
    const showFormError = (message) => {
      errorBox.textContent = message;
      errorBox.hidden = false;
    };
    errorBox.hidden = true;
    const patch = {};
    const content = textarea.value;
    if (!content.trim()) {
      showFormError('The content may not be empty. To remove this memory, forget it instead.');
      textarea.focus();
      return;
    }
    if (content !== memory.content) patch.content = content;
    if (select.value !== memory.category) patch.category = select.value;
    if (date.value && date.value !== currentDate) {
      if (date.value > currentDate) {
        showFormError('The date to forget it on may only be brought earlier, never later.');
        date.focus();
        return;
      }
      if (date.min && date.value < date.min) {
        showFormError('Pick a date after today. To forget it now, use Forget instead.');
        date.focus();
        return;
      }
      patch.expires_at = localMidnightIso(date.value);
    }
    if (Object.keys(patch).length === 0) {
      close();
      setStatus('Nothing changed.');
      return;
    }
    const save = form.querySelector('.save-button');
    save.disabled = true;
    try {
      const updated = await api('PATCH', `/v1/me/memories/${encodeURIComponent(memory.id)}`, {
        body: patch,
        headers: { 'If-Match': `"${memory.version}"` },
      });
      state.memories = state.memories.map((m) => (m.id === updated.id ? updated : m));
      renderMemories();
      const item = findItem(updated.id);
      if (item) item.querySelector('.edit-button').focus();
      setStatus(`Saved. The memory is now at version ${updated.version}.`);
    } catch (error) {
      save.disabled = false;
      if (error instanceof ApiError && error.status === 412) {
        showFormError(
          'This memory was changed elsewhere since you loaded it, so your change was not saved. ' +
            'Reload to see the current version, then make your change again.',
        );
        form.querySelector('.reload-button').hidden = false;
        form.querySelector('.reload-button').focus();
      } else if (error instanceof ApiError && error.status === 401) {
        report(error);
      } else {
        showFormError(`Not saved: ${describe(error)}`);
      }
    }
  }

  // ---- history

  async function toggleHistory(item, memory) {
    const button = item.querySelector('.history-button');
    const box = item.querySelector('.memory-history');
    if (button.getAttribute('aria-expanded') === 'true') {
      button.setAttribute('aria-expanded', 'false');
      button.querySelector('.button-label').textContent = 'History';
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    clearError();
    button.disabled = true;
    try {
      const versions = await api('GET', `/v1/me/memories/${encodeURIComponent(memory.id)}/history`);
      renderHistory(box, memory, versions);
      box.hidden = false;
      button.setAttribute('aria-expanded', 'true');
      button.querySelector('.button-label').textContent = 'Hide history';
      setStatus(
        versions.length
          ? `History shown: ${plural(versions.length, 'earlier version', 'earlier versions')}.`
          : 'This memory has no earlier versions.',
      );
    } catch (error) {
      report(error, 'The history could not be loaded');
    } finally {
      button.disabled = false;
    }
  }

  function renderHistory(box, memory, versions) {
    box.replaceChildren();
    box.append(el('h3', { text: 'Earlier versions' }));
    if (!versions.length) {
      box.append(el('p', { className: 'help', text: 'None: this memory has not been changed since it was written.' }));
      return;
    }
    const list = el('ul', { className: 'history-list' });
    for (const version of versions) {
      const when = el('p', { className: 'history-when' }, [
        `Version ${version.version}, from `,
        timeElement(version.valid_from),
        ' until ',
        timeElement(version.valid_until),
      ]);
      const content = el('p', { className: 'history-content', text: version.content });
      const meta = el('p', { className: 'help' }, [
        `Category: ${humanize(version.category)}. Expiry then: `,
        timeElement(version.expires_at, false),
        '.',
      ]);
      list.append(el('li', { attrs: { 'data-version': String(version.version) } }, [when, content, meta]));
    }
    box.append(list);
    box.append(el('p', { className: 'help', text: `The current version, shown above, is version ${memory.version}.` }));
  }

  // ---- forget

  async function onForgetMemory(memory) {
    clearError();
    const confirmed = await confirmAction({
      title: 'Forget this memory?',
      message: `"${memory.content}" will be deleted for good, with all its earlier versions. This cannot be undone.`,
      confirmLabel: 'Forget this memory',
    });
    if (!confirmed) {
      setStatus('Nothing was forgotten.');
      return;
    }
    try {
      const erasure = await api('DELETE', `/v1/me/memories/${encodeURIComponent(memory.id)}`, {
        headers: { Prefer: 'return=representation' },
      });
      state.memories = state.memories.filter((m) => m.id !== memory.id);
      renderMemories();
      $('memories-title').focus();
      setStatus(`The memory is forgotten.${finalSentence(erasure)}`);
    } catch (error) {
      report(error, 'The memory was not forgotten');
    }
  }

  // When copies made before the forget (backups, database logs) stop opening too.
  function finalSentence(erasure) {
    if (!erasure || !erasure.final_at) return '';
    return ` Copies in backups can no longer be opened after ${dateTimeFormat.format(new Date(erasure.final_at))}.`;
  }

  async function onForgetCategory(category) {
    clearError();
    const name = humanize(category);
    const confirmed = await confirmAction({
      title: `Forget all of ${name}?`,
      message:
        `Every memory in the category ${name} will be deleted for good, with all earlier versions` +
        `${state.query ? ', including memories your search does not show' : ''}. This cannot be undone.`,
      confirmLabel: `Forget all of ${name}`,
    });
    if (!confirmed) {
      setStatus('Nothing was forgotten.');
      return;
    }
    try {
      const result = await api('DELETE', `/v1/me/memories${query({ category })}`);
      await loadMemories();
      $('memories-title').focus();
      setStatus(`Forgot ${plural(result.deleted, 'memory', 'memories')} in ${name}.${finalSentence(result)}`);
    } catch (error) {
      report(error, `${name} was not forgotten`);
    }
  }

  async function onSearch(event) {
    event.preventDefault();
    clearError();
    state.query = $('search-input').value.trim();
    try {
      await loadMemories();
      setStatus($('memories-summary').textContent);
    } catch (error) {
      report(error, 'The search failed');
    }
  }

  async function onSearchClear() {
    clearError();
    $('search-input').value = '';
    state.query = '';
    try {
      await loadMemories();
      setStatus($('memories-summary').textContent);
    } catch (error) {
      report(error);
    }
  }

  // ---------------------------------------------------------------- consent

  async function loadConsents() {
    const overview = await loadCatalogue();
    applySettings({ memory_enabled: overview.memory_enabled });
    renderConsents(overview);
  }

  function renderConsents(overview) {
    const container = $('consent-purposes');
    container.replaceChildren();
    state.consentCells = new Map();
    state.purposeSwitches = new Map();
    const byKey = new Map();
    for (const item of overview.items) byKey.set(`${item.purpose}/${item.category}`, item);
    for (const purpose of state.purposes) {
      container.append(renderPurpose(purpose, byKey));
    }
  }

  /** One purpose: its switch (every ordinary category at once), and the categories one by one
   * under "Choose per category". */
  function renderPurpose(purpose, byKey) {
    const id = `purpose-${purpose}`;
    const input = el('input', { attrs: { id, type: 'checkbox', role: 'switch', 'data-purpose': purpose } });
    const stateText = el('span', { className: 'state-text' });
    const label = el('label', { attrs: { for: id } }, [
      el('span', { className: 'purpose-name', text: humanize(purpose) }),
      ' ',
      stateText,
    ]);
    const list = el('ul', { className: 'consent-list' });
    for (const category of state.categories) {
      const item = byKey.get(`${purpose}/${category}`);
      if (item) list.append(renderConsentItem(item));
    }
    const details = el('details', { className: 'purpose-details', attrs: { id: `${id}-details` } }, [
      el('summary', { text: 'Choose per category' }),
      list,
    ]);
    const card = el('section', { className: 'card purpose-card', attrs: { 'data-purpose': purpose } }, [
      el('div', { className: 'switch-field' }, [input, label]),
      details,
    ]);
    state.purposeSwitches.set(purpose, { input, stateText });
    applyPurposeState(purpose);
    input.addEventListener('change', () => onPurposeChange(purpose, input));
    return card;
  }

  function renderConsentItem(item) {
    const id = `consent-${item.purpose}-${item.category}`;
    const input = el('input', {
      attrs: { id, type: 'checkbox', role: 'switch', 'data-purpose': item.purpose, 'data-category': item.category },
    });
    const name = el('span', { className: 'category-name', text: humanize(item.category) });
    if (item.sensitive) name.append(' ', sensitiveBadge());
    const stateText = el('span', { className: 'state-text' });
    const label = el('label', { attrs: { for: id } }, [
      el('span', { className: 'visually-hidden', text: `${humanize(item.purpose)}, ` }),
      name,
      ': ',
      stateText,
    ]);
    const row = el('li', {
      className: item.sensitive ? 'consent-item is-sensitive' : 'consent-item',
      attrs: { 'data-category': item.category },
    }, [el('div', { className: 'switch-field' }, [input, label])]);
    const parts = { input, stateText, row };
    state.consentCells.set(`${item.purpose}/${item.category}`, parts);
    applyConsentState(parts, item);
    input.addEventListener('change', () => onConsentChange(item.purpose, item.category, input));
    return row;
  }

  function applyConsentState(parts, item) {
    parts.input.checked = Boolean(item.granted);
    parts.stateText.textContent = `${item.granted ? 'Allowed' : 'Not allowed'}${item.default ? ' (default)' : ''}`;
    parts.row.classList.toggle('is-granted', Boolean(item.granted));
  }

  /** The purpose's switch: on when every ordinary category is allowed, mixed when some are. */
  function applyPurposeState(purpose) {
    const parts = state.purposeSwitches.get(purpose);
    if (!parts) return;
    const items = state.categories.map((c) => state.consents.get(`${purpose}/${c}`)).filter(Boolean);
    const ordinary = items.filter((item) => !item.sensitive);
    const allowed = items.filter((item) => item.granted).length;
    const all = ordinary.length > 0 && ordinary.every((item) => item.granted);
    parts.input.checked = all;
    parts.input.indeterminate = !all && allowed > 0;
    parts.stateText.textContent = allowed === 0
      ? 'Off'
      : `Allowed for ${allowed} of ${items.length} categories`;
  }

  function applyConsentItems(items) {
    for (const item of items) {
      state.consents.set(`${item.purpose}/${item.category}`, item);
      const parts = state.consentCells.get(`${item.purpose}/${item.category}`);
      if (parts) applyConsentState(parts, item);
    }
    for (const purpose of new Set(items.map((item) => item.purpose))) applyPurposeState(purpose);
  }

  async function putConsent(purpose, category, granted) {
    const result = await api(
      'PUT',
      `/v1/me/consents/${encodeURIComponent(purpose)}/${encodeURIComponent(category)}`,
      { body: { granted }, headers: { 'X-Consent-Channel': 'web' } },
    );
    applyConsentItems(result.items);
  }

  async function onPurposeChange(purpose, input) {
    clearError();
    const granted = input.checked;
    input.disabled = true;
    try {
      await putConsent(purpose, '*', granted);
      setStatus(
        granted
          ? `${humanize(purpose)} may now use your ordinary categories. Sensitive ones stay as you chose them one by one.`
          : `${humanize(purpose)} may no longer use any of your memories.`,
      );
      await loadConsentHistory(false);
    } catch (error) {
      applyPurposeState(purpose);
      report(error, 'Your choice was not saved');
    } finally {
      input.disabled = false;
    }
  }

  async function onConsentChange(purpose, category, input) {
    clearError();
    const granted = input.checked;
    input.disabled = true;
    try {
      await putConsent(purpose, category, granted);
      setStatus(
        granted
          ? `${humanize(purpose)} may now use ${humanize(category)}.`
          : `${humanize(purpose)} may no longer use ${humanize(category)}.`,
      );
      await loadConsentHistory(false);
    } catch (error) {
      input.checked = !granted;
      report(error, 'Your choice was not saved');
    } finally {
      input.disabled = false;
    }
  }

  async function loadConsentHistory(more) {
    const cursor = more ? state.historyCursor : null;
    const page = await api('GET', `/v1/me/consents/history${query({ limit: 50, cursor })}`);
    const body = $('consent-history-body');
    if (!more) body.replaceChildren();
    for (const change of page.items) {
      body.append(
        el('tr', {}, [
          el('td', {}, [timeElement(change.at)]),
          el('td', { text: humanize(change.purpose) }),
          el('td', { text: humanize(change.category) }),
          el('td', { text: change.granted ? 'Granted' : 'Withdrawn' }),
          el('td', { text: PREVIOUS_LABELS[change.previous] || change.previous }),
          el('td', { text: change.channel === 'web' ? 'This page' : change.channel.toUpperCase() }),
        ]),
      );
    }
    if (!body.children.length) {
      body.append(el('tr', {}, [el('td', { text: 'No changes yet: the defaults apply.', attrs: { colspan: '6' } })]));
    }
    state.historyCursor = page.next_cursor;
    $('consent-history-more').hidden = !page.next_cursor;
  }

  // ---------------------------------------------------------------- access log

  async function loadAccessLog(more) {
    const cursor = more ? state.accessCursor : null;
    const page = await api('GET', `/v1/me/access-log${query({ limit: PAGE_LIMIT, cursor })}`);
    state.accessItems = more ? [...state.accessItems, ...page.items] : page.items;
    state.accessCursor = page.next_cursor;
    $('access-more').hidden = !page.next_cursor;
    renderAccessLog();
  }

  function reasonText(reason) {
    if (!reason) return '';
    return String(reason).replace(/^\/problems\//, '').replace(/-/g, ' ');
  }

  function renderAccessLog() {
    const body = $('access-body');
    body.replaceChildren();
    const hideOwn = $('access-hide-own').checked;
    for (const entry of state.accessItems) {
      const own = entry.actor_role === 'user';
      if (hideOwn && own) continue;
      const who = own ? 'You' : `${entry.actor || 'Unknown reader'} (${entry.actor_role})`;
      const count = entry.result_count !== null && entry.result_count !== undefined
        ? entry.result_count
        : entry.memory_ids.length;
      const what = `${actionLabel(entry.action)}: ${plural(count, 'memory', 'memories')}`;
      const allowed = entry.outcome === 'allowed';
      const outcome = el('td', { className: allowed ? 'outcome-allowed' : 'outcome-denied' }, [
        allowed ? 'Allowed' : 'Refused',
      ]);
      if (!allowed && entry.reason) outcome.append(` (${reasonText(entry.reason)})`);
      body.append(
        el('tr', { attrs: { 'data-role': entry.actor_role, 'data-action': entry.action } }, [
          el('td', {}, [timeElement(entry.at)]),
          el('td', { text: who }),
          el('td', { text: what }),
          el('td', { text: entry.purpose ? humanize(entry.purpose) : '-' }),
          outcome,
        ]),
      );
    }
    if (!body.children.length) {
      body.append(el('tr', {}, [el('td', { text: 'Nobody has read your memories yet.', attrs: { colspan: '5' } })]));
    }
  }

  // ---------------------------------------------------------------- export and forget everything

  async function onExport() {
    clearError();
    const button = $('export-button');
    button.disabled = true;
    try {
      const document_ = await api('GET', '/v1/me/export');
      const blob = new Blob([JSON.stringify(document_, null, 2)], { type: 'application/json' });
      if (state.exportUrl) URL.revokeObjectURL(state.exportUrl);
      state.exportUrl = URL.createObjectURL(blob);
      const link = $('export-link');
      link.href = state.exportUrl;
      $('export-ready').hidden = false;
      link.click();
      link.focus();
      setStatus(
        `Your export is ready: ${plural(document_.memories.length, 'memory', 'memories')}. ` +
          'The download has started; use the link if it did not.',
      );
    } catch (error) {
      report(error, 'The export failed');
    } finally {
      button.disabled = false;
    }
  }

  async function onForgetAll() {
    clearError();
    const confirmed = await confirmAction({
      title: 'Forget everything about you?',
      message:
        'Every memory and earlier version, your consent choices, settings and tokens will be ' +
        'erased and your data key destroyed. This cannot be undone, and this page will sign you out.',
      confirmLabel: 'Forget everything',
    });
    if (!confirmed) {
      setStatus('Nothing was forgotten.');
      return;
    }
    try {
      const receipt = await api('DELETE', '/v1/me');
      endSession();
      renderReceipt(receipt);
      const blob = new Blob([JSON.stringify(receipt, null, 2)], { type: 'application/json' });
      state.receiptUrl = URL.createObjectURL(blob);
      $('receipt-link').href = state.receiptUrl;
      showView('receipt');
      $('receipt-title').focus();
      setStatus('Everything about you is forgotten. Your erasure receipt is shown.');
    } catch (error) {
      report(error, 'Nothing was forgotten');
    }
  }

  function renderReceipt(receipt) {
    const rows = [
      ['User', receipt.user_id],
      ['Erased at', timeElement(receipt.erased_at)],
      ['Memories erased', String(receipt.memories)],
      ['Earlier versions erased', String(receipt.memory_versions)],
      ['Consent choices erased', String(receipt.consent_choices)],
      ['Consent history entries erased', String(receipt.consent_history)],
      ['Settings erased', String(receipt.settings)],
      ['Tokens revoked', String(receipt.tokens)],
      ['Data key destroyed', receipt.data_key_destroyed ? 'Yes' : 'No'],
      [
        'No copy opens after',
        receipt.final_at ? timeElement(receipt.final_at) : 'when the operator next rotates keys',
      ],
      [
        'Erasure status',
        el('a', { text: receipt.erasure_id, attrs: { href: `/v1/erasures/${encodeURIComponent(receipt.erasure_id)}` } }),
      ],
      ['Audit record', `#${receipt.audit_seq}`],
    ];
    const list = $('receipt');
    list.replaceChildren();
    for (const [term, value] of rows) {
      list.append(el('div', {}, [el('dt', { text: term }), el('dd', {}, [value])]));
    }
  }

  // ---------------------------------------------------------------- wiring

  function wire() {
    $('signin-form').addEventListener('submit', onSignIn);
    $('sign-out').addEventListener('click', onSignOut);
    for (const button of document.querySelectorAll('.nav-button')) {
      button.addEventListener('click', () => openView(button.dataset.view));
    }
    $('search-form').addEventListener('submit', onSearch);
    $('search-clear').addEventListener('click', onSearchClear);
    $('memory-enabled').addEventListener('change', onMemoryEnabledChange);
    $('consent-history-more').addEventListener('click', () => loadConsentHistory(true).catch((e) => report(e)));
    $('access-more').addEventListener('click', () => loadAccessLog(true).catch((e) => report(e)));
    $('access-hide-own').addEventListener('change', renderAccessLog);
    $('export-button').addEventListener('click', onExport);
    $('forget-all').addEventListener('click', onForgetAll);
    $('receipt-done').addEventListener('click', () => {
      clearData();
      showView('signin');
      $('token-input').focus();
    });
    $('confirm-ok').addEventListener('click', () => $('confirm-dialog').close('confirm'));
    $('confirm-cancel').addEventListener('click', () => $('confirm-dialog').close('cancel'));
  }

  async function restore() {
    let token = null;
    try {
      token = window.sessionStorage.getItem(TOKEN_KEY);
    } catch (_ignored) {
      token = null;
    }
    if (!token) {
      showView('signin');
      return;
    }
    try {
      await startSession(token, { remember: false });
    } catch (error) {
      endSession();
      showError(`Sign-in failed. ${signInProblem(error)}`);
    }
  }

  wire();
  restore();
})();
