// Building the page without innerHTML: every text goes in as a text node,
// so nothing the API returns can inject markup.

import { ApiError } from './api.js';

/**
 * h('p', {class: 'x', onclick: f}, 'text', child, [more, children])
 * Attributes: `class`, `text`, `dataset` ({k: v}), `on<event>` handlers,
 * booleans (true sets, false/null/undefined omits), anything else as an
 * attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'value' && 'value' in el) el.value = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the content of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uniqueId = 0;
export function nextId(prefix) {
  uniqueId += 1;
  return `${prefix}-${uniqueId}`;
}

/** A status message (`kind`: ok, error, info) that screen readers announce. */
export function notice(kind, ...children) {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...children);
}

/** A titled card. */
export function card(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', { text: title }) : null, ...children);
}

/**
 * A form whose fields are named like the API's, so a problem's `errors`
 * land under the input they are about and its `detail` next to the form.
 *
 * fields: [{name, label, type ('text', 'number', 'password', 'email',
 *   'select', 'radio', 'hidden'), options: [[value, label]], value, hint,
 *   placeholder, autocomplete, inputmode, min, max, step}]
 * onSubmit(values, form) may throw an ApiError; what it returns (a node or
 * a string) is shown as a success message.
 */
export function form({ fields, submit, onSubmit, className = '', extra = null, name = '' }) {
  const status = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const button = h('button', { type: 'submit', class: 'primary', text: submit });
  const inputs = new Map();
  const errors = new Map();
  const rows = fields.map((field) => {
    const id = nextId(field.name);
    const error = h('small', { class: 'field-error', id: `${id}-error`, hidden: true });
    errors.set(field.name, error);
    let control;
    if (field.type === 'hidden') {
      control = h('input', { type: 'hidden', name: field.name, value: field.value ?? '' });
      inputs.set(field.name, control);
      return control;
    }
    if (field.type === 'select') {
      control = h(
        'select',
        { id, name: field.name, 'aria-describedby': `${id}-error` },
        field.options.map(([value, label]) => h('option', { value, text: label, selected: String(field.value ?? '') === String(value) })),
      );
    } else if (field.type === 'radio') {
      control = h(
        'div',
        { class: 'segmented', role: 'radiogroup', 'aria-labelledby': `${id}-label` },
        field.options.map(([value, label], i) => {
          const optionId = `${id}-${i}`;
          return h(
            'span',
            {},
            h('input', {
              type: 'radio',
              id: optionId,
              name: field.name,
              value,
              checked: String(field.value ?? field.options[0][0]) === String(value),
            }),
            h('label', { for: optionId, text: label }),
          );
        }),
      );
    } else {
      control = h('input', {
        id,
        name: field.name,
        type: field.type || 'text',
        value: field.value ?? '',
        placeholder: field.placeholder,
        autocomplete: field.autocomplete || 'off',
        inputmode: field.inputmode,
        min: field.min,
        max: field.max,
        step: field.step,
        'aria-describedby': `${id}-error`,
      });
    }
    inputs.set(field.name, control);
    const label =
      field.type === 'radio'
        ? h('span', { class: 'label', id: `${id}-label`, text: field.label })
        : h('label', { for: id, class: 'label', text: field.label });
    return h(
      'div',
      { class: `field field-${field.name}` },
      label,
      control,
      field.hint ? h('small', { class: 'hint', text: field.hint }) : null,
      error,
    );
  });
  const el = h(
    'form',
    { class: `form ${className}`, novalidate: true, name: name || null },
    rows,
    extra,
    h('div', { class: 'actions' }, button),
    status,
  );

  const values = () => {
    const data = {};
    for (const field of fields) {
      if (field.type === 'radio') {
        const checked = el.querySelector(`input[name="${field.name}"]:checked`);
        data[field.name] = checked ? checked.value : '';
      } else {
        data[field.name] = inputs.get(field.name).value.trim();
      }
    }
    return data;
  };

  const api = {
    el,
    inputs,
    values,
    button,
    clear() {
      for (const error of errors.values()) {
        error.hidden = true;
        error.textContent = '';
      }
      for (const input of inputs.values()) input.removeAttribute('aria-invalid');
      status.replaceChildren();
    },
    /** Shows a problem: field messages under their inputs, the rest above the buttons. */
    showError(problem) {
      api.clear();
      const unplaced = [];
      const fieldErrors = problem instanceof ApiError ? problem.errors : {};
      for (const [field, message] of Object.entries(fieldErrors || {})) {
        const slot = errors.get(field);
        if (slot) {
          slot.textContent = message;
          slot.hidden = false;
          inputs.get(field)?.setAttribute('aria-invalid', 'true');
        } else {
          unplaced.push(`${field}: ${message}`);
        }
      }
      const detail = problem instanceof ApiError ? problem.detail : String(problem?.message || problem);
      status.replaceChildren(notice('error', [detail, ...unplaced].join(' · ')));
    },
    showOk(message) {
      api.clear();
      if (message !== undefined && message !== null && message !== '') {
        status.replaceChildren(notice('ok', message));
      }
    },
    setBusy(busy) {
      button.disabled = busy;
      el.classList.toggle('busy', busy);
    },
  };

  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    api.clear();
    api.setBusy(true);
    try {
      const done = await onSubmit(values(), api);
      if (done !== undefined) api.showOk(done);
    } catch (error) {
      if (!(error instanceof ApiError)) console.error(error);
      api.showError(error);
    } finally {
      api.setBusy(false);
    }
  });
  return api;
}

/** A row of tab buttons; calls onChange(value) on a click. */
export function tabs(options, current, onChange, label) {
  const bar = h('div', { class: 'tabs', role: 'tablist', 'aria-label': label });
  const draw = (selected) => {
    replace(
      bar,
      options.map(([value, text]) =>
        h('button', {
          type: 'button',
          role: 'tab',
          'aria-selected': String(value === selected),
          class: value === selected ? 'tab active' : 'tab',
          text,
          onclick: () => {
            draw(value);
            onChange(value);
          },
        }),
      ),
    );
  };
  draw(current);
  return bar;
}

/**
 * A table that turns into stacked cards on narrow screens (each cell
 * carries its column's name for the CSS to show); `compact` ones, with few
 * short columns, stay tables.
 */
export function table(columns, rows, { empty = 'Nothing here yet.', rowAttrs, compact = false } = {}) {
  if (!rows.length) return h('p', { class: 'muted empty', text: empty });
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: compact ? 'list compact' : 'list' },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class, text: c.label })))),
      h(
        'tbody',
        {},
        rows.map((row) =>
          h(
            'tr',
            rowAttrs ? rowAttrs(row) : {},
            columns.map((c) => h('td', { 'data-label': c.label, class: c.class }, c.cell(row))),
          ),
        ),
      ),
    ),
  );
}
